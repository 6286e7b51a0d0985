#include "server_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t hpo_registry_parse_id(const char *text)
{
    if (text == NULL || text[0] != 'w' || text[1] < '1' || text[1] > '9')
        return 0;
    char *end = NULL;
    long long id = strtoll(text + 1, &end, 10);
    return *end == '\0' && id > 0 ? (int64_t)id : 0;
}

worker_slot *hpo_registry_find(server *srv, int64_t id)
{
    for (size_t i = 0; i < srv->n_workers; i++) {
        if (srv->workers[i].id == id && srv->workers[i].connected)
            return &srv->workers[i];
    }
    return NULL;
}

bool hpo_registry_is_same(const worker_slot *w, const hpo_peer *peer,
                          const hpo_msg_register *reg)
{
    if (!w->connected)
        return false;
    if (w->peer.size == peer->size && memcmp(w->peer.id, peer->id, peer->size) == 0)
        return true;
    return w->pid == reg->pid && strcmp(w->host, reg->host) == 0 &&
           strcmp(w->name, reg->name) == 0;
}

bool hpo_registry_credentials_match(const worker_slot *w, const hpo_peer *peer,
                                    const char *token)
{
    return hpo_worker_token_equal(w->token, token) &&
           strcmp(w->public_key, peer->public_key) == 0;
}

worker_slot *hpo_registry_add(server *srv)
{
    /* Reuse the slot of a worker that was lost. */
    for (size_t i = 0; i < srv->n_workers; i++) {
        if (!srv->workers[i].connected) {
            memset(&srv->workers[i], 0, sizeof srv->workers[i]);
            return &srv->workers[i];
        }
    }
    if (srv->n_workers == srv->workers_capacity) {
        size_t grown = srv->workers_capacity == 0 ? 8 : srv->workers_capacity * 2;
        worker_slot *bigger = realloc(srv->workers, grown * sizeof *bigger);
        if (bigger == NULL)
            return NULL;
        srv->workers = bigger;
        srv->workers_capacity = grown;
    }
    worker_slot *w = &srv->workers[srv->n_workers++];
    memset(w, 0, sizeof *w);
    return w;
}

int hpo_registry_connected_count(const server *srv)
{
    int count = 0;
    for (size_t i = 0; i < srv->n_workers; i++)
        count += srv->workers[i].connected;
    return count;
}

cJSON *hpo_registry_to_json(const server *srv, int64_t now)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; list != NULL && i < srv->n_workers; i++) {
        const worker_slot *w = &srv->workers[i];
        if (!w->connected)
            continue;
        cJSON *obj = cJSON_CreateObject();
        char id[32];
        snprintf(id, sizeof id, "w%" PRId64, w->id);
        cJSON_AddStringToObject(obj, "id", id);
        cJSON_AddStringToObject(obj, "name", w->name);
        cJSON_AddStringToObject(obj, "host", w->host);
        cJSON_AddNumberToObject(obj, "pid", (double)w->pid);
        cJSON_AddNumberToObject(obj, "threads", w->threads);
        int64_t trial = hpo_scheduler_worker_trial(srv->parts->scheduler, w->id);
        if (trial > 0)
            cJSON_AddNumberToObject(obj, "trial", (double)trial);
        else
            cJSON_AddNullToObject(obj, "trial");
        cJSON_AddNumberToObject(obj, "last_seen_ms_ago", (double)(now - w->last_seen_ms));
        cJSON_AddItemToArray(list, obj);
    }
    return list;
}
