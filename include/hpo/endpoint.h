/* Facts about ZeroMQ endpoint strings that hpod's policy needs. */
#ifndef HPO_ENDPOINT_H
#define HPO_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

/* Returns true when a socket bound to endpoint accepts connections from
 * this host only: ipc:// and inproc:// endpoints, and tcp:// endpoints
 * whose host is `localhost`, an IPv4 address in 127.0.0.0/8, or the IPv6
 * loopback `[::1]` (also as the IPv4-mapped `[::ffff:127.x.y.z]`).
 * Everything else counts as reachable from the network: tcp://\*,
 * tcp://0.0.0.0, other addresses, host names, interface names such as
 * `lo` or `eth0`, and other transports. */
bool hpo_endpoint_is_local(const char *endpoint);

/* Checks that endpoint is tcp://HOST:PORT with PORT a number from 0 to
 * 65535 or *, or ipc://PATH, or inproc://NAME. Returns -1 with a message
 * otherwise; libzmq itself accepts some invalid ports and binds a random
 * one instead. */
int hpo_endpoint_validate(const char *endpoint, char *err, size_t errlen);

#endif
