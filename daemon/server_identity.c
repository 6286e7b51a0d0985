#include "server_identity.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int hpo_worker_token_new(char *token, char *err, size_t errlen)
{
    unsigned char bytes[HPO_WORKER_TOKEN_BYTES];
    size_t filled = 0;
    while (filled < sizeof bytes) {
        ssize_t n = getrandom(bytes + filled, sizeof bytes - filled, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "getrandom failed: %s", strerror(errno));
            return -1;
        }
        filled += (size_t)n;
    }

    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof bytes; i++) {
        token[2 * i] = digits[bytes[i] >> 4];
        token[2 * i + 1] = digits[bytes[i] & 0xF];
    }
    token[2 * sizeof bytes] = '\0';
    return 0;
}

bool hpo_worker_token_equal(const char *stored, const char *presented)
{
    size_t stored_len = strlen(stored);
    if (stored_len == 0 || strlen(presented) != stored_len)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < stored_len; i++)
        diff |= (unsigned char)(stored[i] ^ presented[i]);
    return diff == 0;
}

const char *hpo_peer_principal(const hpo_peer *peer, char *buf, size_t size)
{
    char id[HPO_PRINCIPAL_MAX + 1];
    if (peer->public_key[0] != '\0')
        snprintf(buf, size, "key %s", peer->public_key);
    else if (peer->address[0] != '\0')
        snprintf(buf, size, "address %s", peer->address);
    else
        snprintf(buf, size, "routing id %s", hpo_peer_format(peer, id, sizeof id));
    return buf;
}

const char *hpo_peer_describe(const hpo_peer *peer, char *buf, size_t size)
{
    char id[HPO_PRINCIPAL_MAX + 1];
    hpo_peer_format(peer, id, sizeof id);
    if (peer->public_key[0] != '\0')
        snprintf(buf, size, "peer %s (address %s, key %s)", id,
                 peer->address[0] ? peer->address : "unknown", peer->public_key);
    else
        snprintf(buf, size, "peer %s (address %s)", id,
                 peer->address[0] ? peer->address : "unknown");
    return buf;
}

bool hpo_register_limiter_allow(hpo_register_limiter *limiter, const char *principal,
                                int64_t now_ms, int64_t *retry_ms)
{
    size_t n = sizeof limiter->peers / sizeof limiter->peers[0];

    /* 1. Find the peer's entry, else the least recently used one. A zeroed
     * entry has last_ms 0 and is taken first. */
    size_t slot = 0;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(limiter->peers[i].principal, principal) == 0 &&
            limiter->peers[i].last_ms > 0) {
            slot = i;
            found = true;
        } else if (limiter->peers[i].last_ms < limiter->peers[slot].last_ms) {
            slot = i;
        }
    }
    if (!found) {
        snprintf(limiter->peers[slot].principal, sizeof limiter->peers[slot].principal,
                 "%s", principal);
        limiter->peers[slot].window_start_ms = now_ms;
        limiter->peers[slot].count = 0;
    }

    /* 2. Start a new window when the old one has ended, then count. */
    hpo_register_count *entry = &limiter->peers[slot];
    if (now_ms - entry->window_start_ms >= HPO_REGISTER_WINDOW_MS) {
        entry->window_start_ms = now_ms;
        entry->count = 0;
    }
    entry->last_ms = now_ms > 0 ? now_ms : 1;
    if (entry->count >= HPO_REGISTER_LIMIT) {
        *retry_ms = entry->window_start_ms + HPO_REGISTER_WINDOW_MS - now_ms;
        return false;
    }
    entry->count++;
    return true;
}

int hpo_worker_kind_check(const char *study_name, bool synthetic, hpo_worker_kind kind,
                          char *text, size_t size)
{
    if (kind == HPO_WORKER_KIND_UNKNOWN ||
        kind == (synthetic ? HPO_WORKER_KIND_OBJECTIVE : HPO_WORKER_KIND_CIFAR10))
        return 0;

    if (synthetic)
        snprintf(text, size, "study \"%s\" is synthetic and needs objective workers, "
                 "but this is a cifar10 worker, which trains models on CIFAR-10; run "
                 "hpo-worker --objective NAME with the study's objective (branin, "
                 "hartmann6 or mixed16) instead", study_name);
    else
        snprintf(text, size, "study \"%s\" trains models on CIFAR-10 and needs cifar10 "
                 "workers, but this is an objective worker, which evaluates a "
                 "synthetic objective; run hpo-worker --data DIR without --objective "
                 "instead", study_name);
    return -1;
}
