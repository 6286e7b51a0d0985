/* Key roles and the authorized-keys file. */
#include "hpo/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"

/* Maximum length of a line of an authorized-keys file, comment included. */
#define LINE_MAX_BYTES 1024

/* Keys a file may list; far more than any cluster needs, and a bound on
 * the memory a wrong --authorized-keys argument can take. */
#define KEYS_MAX 100000

static const char *const role_names[] = {
    [HPO_ROLE_READ] = "read",
    [HPO_ROLE_WORKER] = "worker",
    [HPO_ROLE_ADMIN] = "admin",
};

typedef struct {
    char key[HPO_CURVE_KEY_CHARS + 1];
    hpo_auth_role role;
} authorized_key;

struct hpo_authorized_keys {
    authorized_key *items;
    size_t count, capacity;
};

const char *hpo_auth_role_name(hpo_auth_role role)
{
    if ((unsigned)role >= sizeof role_names / sizeof role_names[0])
        return "unknown";
    return role_names[role];
}

int hpo_auth_role_parse(const char *name, hpo_auth_role *role)
{
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
        if (strcmp(name, role_names[i]) == 0) {
            *role = (hpo_auth_role)i;
            return 0;
        }
    }
    return -1;
}

bool hpo_auth_role_allows(hpo_auth_role role, const char *domain)
{
    if (domain == NULL)
        return false;
    if (role == HPO_ROLE_ADMIN)
        return strcmp(domain, HPO_ZAP_DOMAIN_WORKERS) == 0 ||
               strcmp(domain, HPO_ZAP_DOMAIN_CONTROL) == 0;
    if (role == HPO_ROLE_WORKER)
        return strcmp(domain, HPO_ZAP_DOMAIN_WORKERS) == 0;
    return role == HPO_ROLE_READ && strcmp(domain, HPO_ZAP_DOMAIN_CONTROL) == 0;
}

size_t hpo_authorized_keys_count(const hpo_authorized_keys *keys)
{
    return keys != NULL ? keys->count : 0;
}

bool hpo_authorized_keys_find(const hpo_authorized_keys *keys, const char *key,
                              hpo_auth_role *role)
{
    for (size_t i = 0; keys != NULL && i < keys->count; i++) {
        if (strcmp(keys->items[i].key, key) == 0) {
            *role = keys->items[i].role;
            return true;
        }
    }
    return false;
}

void hpo_authorized_keys_destroy(hpo_authorized_keys **keys)
{
    if (keys == NULL || *keys == NULL)
        return;
    free((*keys)->items);
    free(*keys);
    *keys = NULL;
}

/* True for a blank line or a comment line. '#' is a Z85 character, but no
 * key starts with it (see proto/curve_keys.c). */
static bool line_is_comment(const char *line)
{
    line += strspn(line, " \t\r\n");
    return *line == '\0' || *line == '#';
}

static int keys_add(hpo_authorized_keys *keys, const char *key, hpo_auth_role role)
{
    if (keys->count == keys->capacity) {
        size_t grown = keys->capacity == 0 ? 16 : keys->capacity * 2;
        authorized_key *bigger = realloc(keys->items, grown * sizeof *bigger);
        if (bigger == NULL)
            return -1;
        keys->items = bigger;
        keys->capacity = grown;
    }
    memcpy(keys->items[keys->count].key, key, HPO_CURVE_KEY_CHARS + 1);
    keys->items[keys->count].role = role;
    keys->count++;
    return 0;
}

/* Parses one line that is not a comment: KEY [ROLE] [# COMMENT]. */
static int parse_line(hpo_authorized_keys *keys, char *line, const char *path,
                      int number, char *err, size_t errlen)
{
    char *save = NULL;
    const char *key = strtok_r(line, " \t\r\n", &save);
    if (!hpo_curve_key_valid(key))
        return hpo_error(err, errlen, "%s:%d: \"%.48s\" is not a %d-character Z85 "
                         "public key", path, number,
                         key, HPO_CURVE_KEY_CHARS);

    hpo_auth_role role = HPO_ROLE_READ;
    const char *token = strtok_r(NULL, " \t\r\n", &save);
    if (token != NULL && token[0] != '#') {
        if (hpo_auth_role_parse(token, &role) != 0)
            return hpo_error(err, errlen, "%s:%d: unknown role \"%.32s\"; expected "
                             "worker, read or admin", path, number, token);
        token = strtok_r(NULL, " \t\r\n", &save);
    }
    if (token != NULL && token[0] != '#')
        return hpo_error(err, errlen, "%s:%d: unexpected \"%.32s\" after the role; "
                         "start a comment with \"#\"", path, number, token);

    hpo_auth_role listed;
    if (hpo_authorized_keys_find(keys, key, &listed))
        return hpo_error(err, errlen, "%s:%d: key %s is listed twice; keep one line "
                         "with the role it should have", path, number, key);
    if (keys->count == KEYS_MAX)
        return hpo_error(err, errlen, "%s:%d: more than %d keys", path, number, KEYS_MAX);
    if (keys_add(keys, key, role) != 0)
        return hpo_error(err, errlen, "out of memory reading %s", path);
    return 0;
}

int hpo_authorized_keys_load(const char *path, hpo_authorized_keys **keys_out,
                             char *err, size_t errlen)
{
    *keys_out = NULL;
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return hpo_error(err, errlen, "cannot open authorized-keys file %s: %s", path,
                         strerror(errno));
    hpo_authorized_keys *keys = calloc(1, sizeof *keys);
    if (keys == NULL) {
        fclose(file);
        return hpo_error(err, errlen, "out of memory reading %s", path);
    }

    char line[LINE_MAX_BYTES];
    int number = 0, result = 0;
    while (result == 0 && fgets(line, sizeof line, file) != NULL) {
        number++;
        if (strchr(line, '\n') == NULL && !feof(file))
            result = hpo_error(err, errlen, "%s:%d: line longer than %d bytes", path,
                               number, LINE_MAX_BYTES - 1);
        else if (!line_is_comment(line))
            result = parse_line(keys, line, path, number, err, errlen);
    }
    if (result == 0 && ferror(file))
        result = hpo_error(err, errlen, "cannot read %s: %s", path, strerror(errno));
    fclose(file);

    if (result != 0) {
        hpo_authorized_keys_destroy(&keys);
        return -1;
    }
    *keys_out = keys;
    return 0;
}
