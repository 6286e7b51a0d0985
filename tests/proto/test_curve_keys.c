/* CURVE key files, the authorized-keys file, key roles and the endpoint
 * locality rule, on real files in a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "hpo/auth.h"
#include "hpo/curve.h"
#include "hpo/endpoint.h"
#include "hpo/error.h"

typedef struct {
    char dir[64];
    char prefix[128];
    char key_path[160];
    char pub_path[160];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/hpo-test-curve-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->prefix, sizeof f->prefix, "%s/node", f->dir);
    snprintf(f->key_path, sizeof f->key_path, "%s.key", f->prefix);
    snprintf(f->pub_path, sizeof f->pub_path, "%s.pub", f->prefix);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    int rc = system(command);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs(text, file);
    assert_int_equal(fclose(file), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void read_text(const char *path, char *buf, size_t size)
{
    FILE *file = fopen(path, "r");
    assert_non_null(file);
    size_t n = fread(buf, 1, size - 1, file);
    buf[n] = '\0';
    fclose(file);
}

static hpo_curve_keypair make_pair(void)
{
    hpo_curve_keypair pair;
    char err[HPO_ERR_MAX];
    if (hpo_curve_keypair_generate(&pair, err, sizeof err) != 0)
        fail_msg("%s", err);
    return pair;
}

/* --- key files --------------------------------------------------------------- */

/* keygen's files: the secret file is 0600 and loads back as the same pair,
 * and the public file contains the public key alone. */
static void test_keypair_write_and_load(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    hpo_curve_keypair pair = make_pair();
    assert_true(hpo_curve_key_valid(pair.public_key));
    assert_true(hpo_curve_key_valid(pair.secret_key));
    assert_int_equal(hpo_curve_keypair_write(&pair, f->prefix, err, sizeof err), 0);

    struct stat st;
    assert_int_equal(stat(f->key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(f->pub_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    hpo_curve_keypair loaded;
    if (hpo_curve_keypair_load(f->key_path, &loaded, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(loaded.public_key, pair.public_key);
    assert_string_equal(loaded.secret_key, pair.secret_key);

    char text[256];
    read_text(f->pub_path, text, sizeof text);
    char expected[64];
    snprintf(expected, sizeof expected, "%s\n", pair.public_key);
    assert_string_equal(text, expected);

    char key[HPO_CURVE_KEY_CHARS + 1];
    assert_int_equal(hpo_curve_public_key_load(f->pub_path, key, err, sizeof err), 0);
    assert_string_equal(key, pair.public_key);
}

/* keygen never overwrites a key file. */
static void test_keypair_write_keeps_existing(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    hpo_curve_keypair first = make_pair(), second = make_pair();
    assert_int_equal(hpo_curve_keypair_write(&first, f->prefix, err, sizeof err), 0);
    assert_int_equal(hpo_curve_keypair_write(&second, f->prefix, err, sizeof err), -1);
    assert_non_null(strstr(err, "exists already"));

    /* Only the .pub file left over: still refused, and no .key is made. */
    assert_int_equal(unlink(f->key_path), 0);
    assert_int_equal(hpo_curve_keypair_write(&second, f->prefix, err, sizeof err), -1);
    assert_non_null(strstr(err, f->pub_path));
    assert_int_equal(access(f->key_path, F_OK), -1);

    char key[HPO_CURVE_KEY_CHARS + 1];
    assert_int_equal(hpo_curve_public_key_load(f->pub_path, key, err, sizeof err), 0);
    assert_string_equal(key, first.public_key);
}

/* A secret key file that group or others may read or write is rejected,
 * with the mode and the chmod fix in the message. */
static void test_keypair_load_rejects_open_modes(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    hpo_curve_keypair pair = make_pair(), loaded;
    assert_int_equal(hpo_curve_keypair_write(&pair, f->prefix, err, sizeof err), 0);

    static const mode_t modes[] = {0644, 0640, 0604, 0620, 0602, 0660};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        assert_int_equal(chmod(f->key_path, modes[i]), 0);
        assert_int_equal(hpo_curve_keypair_load(f->key_path, &loaded, err, sizeof err), -1);
        char mode_text[16];
        snprintf(mode_text, sizeof mode_text, "mode %04o", (unsigned)modes[i]);
        assert_non_null(strstr(err, mode_text));
        assert_non_null(strstr(err, "chmod 600"));
        assert_string_equal(loaded.secret_key, "");
    }
    assert_int_equal(chmod(f->key_path, 0400), 0);
    assert_int_equal(hpo_curve_keypair_load(f->key_path, &loaded, err, sizeof err), 0);
}

/* Broken secret key files: each is rejected with a message naming the
 * problem, and a secret key never appears in the message. */
static void test_keypair_load_rejects_bad_files(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX], text[512];
    hpo_curve_keypair a = make_pair(), b = make_pair(), loaded;

    struct {
        const char *what;
        const char *expected;
    } cases[] = {
        {"mixed", "does not belong to the secret key"},
        {"no-secret", "lacks a secret-key line"},
        {"no-public", "lacks a public-key line"},
        {"short", "secret-key is not a 40-character Z85 key"},
        {"unknown", "unknown field \"private-key\""},
        {"twice", "public-key appears twice"},
        {"extra", "expected \"public-key KEY\" or \"secret-key KEY\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *what = cases[i].what;
        if (strcmp(what, "mixed") == 0)
            snprintf(text, sizeof text, "public-key %s\nsecret-key %s\n", b.public_key,
                     a.secret_key);
        else if (strcmp(what, "no-secret") == 0)
            snprintf(text, sizeof text, "# only the public key\npublic-key %s\n",
                     a.public_key);
        else if (strcmp(what, "no-public") == 0)
            snprintf(text, sizeof text, "secret-key %s\n", a.secret_key);
        else if (strcmp(what, "short") == 0)
            snprintf(text, sizeof text, "public-key %s\nsecret-key %.39s\n", a.public_key,
                     a.secret_key);
        else if (strcmp(what, "unknown") == 0)
            snprintf(text, sizeof text, "private-key %s\n", a.secret_key);
        else if (strcmp(what, "twice") == 0)
            snprintf(text, sizeof text, "public-key %s\npublic-key %s\nsecret-key %s\n",
                     a.public_key, a.public_key, a.secret_key);
        else
            snprintf(text, sizeof text, "public-key %s extra\nsecret-key %s\n",
                     a.public_key, a.secret_key);
        write_text(f->key_path, text, 0600);

        if (hpo_curve_keypair_load(f->key_path, &loaded, err, sizeof err) != -1)
            fail_msg("case %s: accepted", what);
        if (strstr(err, cases[i].expected) == NULL)
            fail_msg("case %s: message \"%s\" lacks \"%s\"", what, err, cases[i].expected);
        assert_null(strstr(err, a.secret_key));
        assert_string_equal(loaded.secret_key, "");
    }
}

/* --server-key takes a public key file; a secret key file given by
 * mistake is rejected without echoing anything secret. */
static void test_public_key_load(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX], text[256], key[HPO_CURVE_KEY_CHARS + 1];
    hpo_curve_keypair pair = make_pair();

    /* Comments before the key and text after it, as in authorized_keys. */
    snprintf(text, sizeof text, "# server\n\n%s admin # alice\n", pair.public_key);
    write_text(f->pub_path, text, 0644);
    assert_int_equal(hpo_curve_public_key_load(f->pub_path, key, err, sizeof err), 0);
    assert_string_equal(key, pair.public_key);

    assert_int_equal(unlink(f->pub_path), 0);
    assert_int_equal(hpo_curve_keypair_write(&pair, f->prefix, err, sizeof err), 0);
    assert_int_equal(hpo_curve_public_key_load(f->key_path, key, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"public-key\" is not a 40-character Z85 public key"));
    assert_null(strstr(err, pair.secret_key));

    write_text(f->pub_path, "# nothing here\n", 0644);
    assert_int_equal(hpo_curve_public_key_load(f->pub_path, key, err, sizeof err), -1);
    assert_non_null(strstr(err, "contains no public key"));

    assert_int_equal(hpo_curve_public_key_load("/nonexistent/hpo.pub", key, err,
                                               sizeof err), -1);
    assert_non_null(strstr(err, "cannot open key file /nonexistent/hpo.pub"));
}

/* --- authorized keys ---------------------------------------------------------- */

static void test_authorized_keys_roles(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX], text[1024], path[160];
    hpo_curve_keypair w = make_pair(), r = make_pair(), a = make_pair(), d = make_pair(),
                      unlisted = make_pair();
    snprintf(path, sizeof path, "%s/authorized_keys", f->dir);
    snprintf(text, sizeof text,
             "# hpod's clients\n"
             "\n"
             "#\n"
             "%s worker # gpu-host-1\n"
             "  %s\tread\n"
             "%s admin #alice\n"
             "%s # no role: read\n",
             w.public_key, r.public_key, a.public_key, d.public_key);
    write_text(path, text, 0644);

    hpo_authorized_keys *keys = NULL;
    if (hpo_authorized_keys_load(path, &keys, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(hpo_authorized_keys_count(keys), 4);

    hpo_auth_role role;
    assert_true(hpo_authorized_keys_find(keys, w.public_key, &role));
    assert_int_equal(role, HPO_ROLE_WORKER);
    assert_true(hpo_authorized_keys_find(keys, r.public_key, &role));
    assert_int_equal(role, HPO_ROLE_READ);
    assert_true(hpo_authorized_keys_find(keys, a.public_key, &role));
    assert_int_equal(role, HPO_ROLE_ADMIN);
    assert_true(hpo_authorized_keys_find(keys, d.public_key, &role));
    assert_int_equal(role, HPO_ROLE_READ);
    assert_false(hpo_authorized_keys_find(keys, unlisted.public_key, &role));
    /* A secret key is not a listed public key. */
    assert_false(hpo_authorized_keys_find(keys, w.secret_key, &role));
    hpo_authorized_keys_destroy(&keys);
    assert_null(keys);
}

/* '#' inside a key does not start a comment. No key starts with '#' or
 * '$', the last two of the 85 Z85 characters: 2^32 / 85^4 < 83. */
static void test_authorized_keys_hash_in_key(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX], text[256], path[160];
    hpo_curve_keypair pair;
    int tries = 0;
    do {
        pair = make_pair();
        assert_true(pair.public_key[0] != '#' && pair.public_key[0] != '$');
        tries++;
    } while (strchr(pair.public_key, '#') == NULL && tries < 1000);
    assert_non_null(strchr(pair.public_key, '#'));

    snprintf(path, sizeof path, "%s/authorized_keys", f->dir);
    snprintf(text, sizeof text, "%s admin\n", pair.public_key);
    write_text(path, text, 0644);
    hpo_authorized_keys *keys = NULL;
    if (hpo_authorized_keys_load(path, &keys, err, sizeof err) != 0)
        fail_msg("%s", err);
    hpo_auth_role role;
    assert_true(hpo_authorized_keys_find(keys, pair.public_key, &role));
    assert_int_equal(role, HPO_ROLE_ADMIN);
    hpo_authorized_keys_destroy(&keys);
}

/* Every malformed line is rejected with its file and line number. */
static void test_authorized_keys_rejects_bad_lines(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX], text[512], path[160], expected[200];
    hpo_curve_keypair a = make_pair();
    snprintf(path, sizeof path, "%s/authorized_keys", f->dir);

    struct {
        const char *line2;
        const char *message;
    } cases[] = {
        {"%s owner", "unknown role \"owner\"; expected worker, read or admin"},
        {"%s read extra", "unexpected \"extra\" after the role"},
        {"%.39s read", "is not a 40-character Z85 public key"},
        {"read %s", "\"read\" is not a 40-character Z85 public key"},
        {"%s admin", "is listed twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line2[128];
        snprintf(line2, sizeof line2, cases[i].line2, a.public_key);
        snprintf(text, sizeof text, "%s worker\n%s\n", a.public_key, line2);
        write_text(path, text, 0644);

        hpo_authorized_keys *keys = NULL;
        assert_int_equal(hpo_authorized_keys_load(path, &keys, err, sizeof err), -1);
        assert_null(keys);
        snprintf(expected, sizeof expected, "%s:2: ", path);
        if (strstr(err, expected) == NULL || strstr(err, cases[i].message) == NULL)
            fail_msg("line \"%s\": message \"%s\" lacks \"%s\" or \"%s\"", line2, err,
                     expected, cases[i].message);
    }

    hpo_authorized_keys *keys = NULL;
    assert_int_equal(hpo_authorized_keys_load("/nonexistent/keys", &keys, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "cannot open authorized-keys file /nonexistent/keys"));

    /* An empty file is valid and admits no client. */
    write_text(path, "", 0644);
    assert_int_equal(hpo_authorized_keys_load(path, &keys, err, sizeof err), 0);
    assert_int_equal(hpo_authorized_keys_count(keys), 0);
    hpo_authorized_keys_destroy(&keys);
}

static void test_role_allows_domains(void **state)
{
    (void)state;
    assert_true(hpo_auth_role_allows(HPO_ROLE_WORKER, HPO_ZAP_DOMAIN_WORKERS));
    assert_false(hpo_auth_role_allows(HPO_ROLE_WORKER, HPO_ZAP_DOMAIN_CONTROL));
    assert_false(hpo_auth_role_allows(HPO_ROLE_READ, HPO_ZAP_DOMAIN_WORKERS));
    assert_true(hpo_auth_role_allows(HPO_ROLE_READ, HPO_ZAP_DOMAIN_CONTROL));
    assert_true(hpo_auth_role_allows(HPO_ROLE_ADMIN, HPO_ZAP_DOMAIN_WORKERS));
    assert_true(hpo_auth_role_allows(HPO_ROLE_ADMIN, HPO_ZAP_DOMAIN_CONTROL));
    assert_false(hpo_auth_role_allows(HPO_ROLE_ADMIN, ""));
    assert_false(hpo_auth_role_allows(HPO_ROLE_ADMIN, "other"));
    assert_false(hpo_auth_role_allows(HPO_ROLE_ADMIN, NULL));

    hpo_auth_role role;
    assert_int_equal(hpo_auth_role_parse("admin", &role), 0);
    assert_int_equal(role, HPO_ROLE_ADMIN);
    assert_int_equal(hpo_auth_role_parse("Admin", &role), -1);
    assert_string_equal(hpo_auth_role_name(HPO_ROLE_WORKER), "worker");
}

/* --- endpoints ---------------------------------------------------------------- */

static void test_endpoint_locality(void **state)
{
    (void)state;
    static const char *const local[] = {
        "ipc:///tmp/hpod/workers", "inproc://x", "tcp://127.0.0.1:5555",
        "tcp://127.1.2.3:0", "tcp://127.0.0.1:*", "tcp://localhost:5556",
        "tcp://LOCALHOST:5556", "tcp://[::1]:5555", "tcp://[::ffff:127.0.0.1]:5555",
    };
    static const char *const remote[] = {
        "tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://[::]:5555", "tcp://10.0.0.5:5555",
        "tcp://128.0.0.1:5555", "tcp://eth0:5555", "tcp://lo:5555",
        "tcp://example.org:5555", "tcp://127.0.0.1;10.0.0.1:5555", "tcp://[::1:5555",
        "tcp://127.0.0.1", "tcp://:5555", "udp://127.0.0.1:5555", "ws://127.0.0.1:80",
        "pgm://eth0;239.192.1.1:5555", "", "127.0.0.1:5555", "tcp://[::ffff:10.0.0.1]:1",
    };
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
        if (!hpo_endpoint_is_local(local[i]))
            fail_msg("%s counts as reachable from other hosts", local[i]);
    }
    for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++) {
        if (hpo_endpoint_is_local(remote[i]))
            fail_msg("%s counts as local", remote[i]);
    }
    assert_false(hpo_endpoint_is_local(NULL));
}

/* Endpoint syntax: valid forms pass, and each invalid one is rejected
 * with a message naming the problem. */
static void test_endpoint_validation(void **state)
{
    static const char *const valid[] = {
        "tcp://127.0.0.1:5555", "tcp://127.0.0.1:0", "tcp://*:65535", "tcp://[::1]:80",
        "tcp://127.0.0.1:*", "ipc:///tmp/hpod.sock", "inproc://x",
    };
    static const struct {
        const char *endpoint, *message;
    } invalid[] = {
        {"tcp://127.0.0.1:99999", "invalid port \"99999\""},
        {"tcp://127.0.0.1:65536", "invalid port \"65536\""},
        {"tcp://127.0.0.1:", "invalid port \"\""},
        {"tcp://127.0.0.1:55a", "invalid port \"55a\""},
        {"tcp://5555", "the host or port is missing"},
        {"127.0.0.1:5555", "invalid endpoint; expected tcp://HOST:PORT"},
        {"udp://127.0.0.1:5555", "invalid endpoint; expected tcp://HOST:PORT"},
        {"ipc://", "the path is empty"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        if (hpo_endpoint_validate(valid[i], err, sizeof err) != 0)
            fail_msg("%s rejected: %s", valid[i], err);
    }
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        err[0] = '\0';
        assert_int_equal(hpo_endpoint_validate(invalid[i].endpoint, err, sizeof err), -1);
        if (strstr(err, invalid[i].message) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", invalid[i].endpoint, err,
                     invalid[i].message);
    }
}

int main(void)
{
    if (!zmq_has("curve")) {
        fprintf(stderr, "SKIP: this libzmq has no CURVE support\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keypair_write_and_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keypair_write_keeps_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keypair_load_rejects_open_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keypair_load_rejects_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_key_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorized_keys_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorized_keys_hash_in_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorized_keys_rejects_bad_lines, setup, teardown),
        cmocka_unit_test(test_role_allows_domains),
        cmocka_unit_test(test_endpoint_locality),
        cmocka_unit_test(test_endpoint_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
