/* Endpoint strings: which of them only this host can reach. */
#include "hpo/endpoint.h"

#include "hpo/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* True for a numeric IPv4 address in 127.0.0.0/8. */
static bool ipv4_is_loopback(const char *host)
{
    struct in_addr addr;
    return inet_pton(AF_INET, host, &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127;
}

/* True for ::1 and for ::ffff:127.x.y.z. */
static bool ipv6_is_loopback(const char *host)
{
    struct in6_addr addr;
    if (inet_pton(AF_INET6, host, &addr) != 1)
        return false;
    if (IN6_IS_ADDR_LOOPBACK(&addr))
        return true;
    return IN6_IS_ADDR_V4MAPPED(&addr) && addr.s6_addr[12] == 127;
}

bool hpo_endpoint_is_local(const char *endpoint)
{
    if (endpoint == NULL)
        return false;
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return false;

    /* HOST:PORT, where an IPv6 HOST is written in brackets. libzmq's
     * "SOURCE;HOST:PORT" form only applies to connect, so it is not local. */
    const char *address = endpoint + 6;
    const char *colon = strrchr(address, ':');
    if (colon == NULL || strchr(address, ';') != NULL)
        return false;
    size_t length = (size_t)(colon - address);
    char host[128];
    if (length == 0 || length >= sizeof host)
        return false;
    memcpy(host, address, length);
    host[length] = '\0';

    if (host[0] == '[') {
        if (length < 3 || host[length - 1] != ']')
            return false;
        host[length - 1] = '\0';
        return ipv6_is_loopback(host + 1);
    }
    return strcasecmp(host, "localhost") == 0 || ipv4_is_loopback(host);
}

int hpo_endpoint_validate(const char *endpoint, char *err, size_t errlen)
{
    static const char *const expected =
        "expected tcp://HOST:PORT (PORT from 0 to 65535; 0 picks a free port) or ipc://PATH";

    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0) {
        const char *name = strstr(endpoint, "://") + 3;
        if (*name == '\0')
            return hpo_error(err, errlen, "%s: invalid endpoint, the path is empty; %s",
                             endpoint, expected);
        return 0;
    }
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return hpo_error(err, errlen, "%s: invalid endpoint; %s", endpoint, expected);

    const char *colon = strrchr(endpoint + 6, ':');
    if (colon == NULL || colon == endpoint + 6)
        return hpo_error(err, errlen, "%s: invalid endpoint, the host or port is missing; %s",
                         endpoint, expected);
    const char *port = colon + 1;
    if (strcmp(port, "*") == 0)
        return 0;
    long value = 0;
    for (const char *p = port; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || value > 65535)
            return hpo_error(err, errlen, "%s: invalid port \"%s\"; %s", endpoint, port,
                             expected);
        value = value * 10 + (*p - '0');
    }
    if (*port == '\0' || value > 65535)
        return hpo_error(err, errlen, "%s: invalid port \"%s\"; %s", endpoint, port, expected);
    return 0;
}
