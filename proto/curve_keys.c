/* CURVE key pairs, their files, and the CURVE options of a socket. */
#include "hpo/curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "hpo/error.h"

/* A draft option in libzmq 4.3 (zmq.h declares it only with
 * ZMQ_BUILD_DRAFT_API); Debian's libzmq5 4.3.4 accepts it. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

/* Maximum length of a line of a key file; keygen's lines are under 80
 * bytes. */
#define LINE_MAX_BYTES 1024

bool hpo_curve_key_valid(const char *text)
{
    uint8_t bytes[32];
    return text != NULL && strlen(text) == HPO_CURVE_KEY_CHARS &&
           zmq_z85_decode(bytes, text) != NULL;
}

int hpo_curve_keypair_generate(hpo_curve_keypair *pair, char *err, size_t errlen)
{
    memset(pair, 0, sizeof *pair);
    if (zmq_curve_keypair(pair->public_key, pair->secret_key) != 0)
        return hpo_error(err, errlen, "generating a CURVE key pair failed: %s; "
                         "libzmq must be built with CURVE (libsodium)",
                         zmq_strerror(errno));
    return 0;
}

void hpo_curve_keypair_clear(hpo_curve_keypair *pair)
{
    explicit_bzero(pair->secret_key, sizeof pair->secret_key);
}

/* Writes text to a new file with the given mode; fails when path exists. */
static int write_new_file(const char *path, const char *text, mode_t mode,
                          char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return hpo_error(err, errlen, "%s exists already; remove it or choose "
                             "another --out prefix", path);
        return hpo_error(err, errlen, "cannot create %s: %s", path, strerror(errno));
    }

    size_t size = strlen(text);
    bool ok = fchmod(fd, mode) == 0 && write(fd, text, size) == (ssize_t)size &&
              fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        unlink(path);
        return hpo_error(err, errlen, "cannot write %s: %s", path, strerror(saved));
    }
    return 0;
}

int hpo_curve_keypair_write(const hpo_curve_keypair *pair, const char *prefix,
                            char *err, size_t errlen)
{
    char key_path[4096], pub_path[4096];
    if ((size_t)snprintf(key_path, sizeof key_path, "%s.key", prefix) >= sizeof key_path ||
        (size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", prefix) >= sizeof pub_path)
        return hpo_error(err, errlen, "the prefix \"%.64s...\" is too long", prefix);
    if (access(pub_path, F_OK) == 0)
        return hpo_error(err, errlen, "%s exists already; remove it or choose "
                         "another --out prefix", pub_path);

    /* The comment names the file by its last path component, cut to 64
     * bytes, so that the text always fits. */
    const char *name = strrchr(prefix, '/') != NULL ? strrchr(prefix, '/') + 1 : prefix;
    char secret_text[512];
    snprintf(secret_text, sizeof secret_text,
             "# CURVE key pair written by hpoctl keygen. Keep this file secret:\n"
             "# hpod, hpo-worker and hpoctl reject it when group or others may\n"
             "# read it. Give the public key (%.64s.pub) to the other side.\n"
             "public-key %s\n"
             "secret-key %s\n",
             name, pair->public_key, pair->secret_key);
    char public_text[64];
    snprintf(public_text, sizeof public_text, "%s\n", pair->public_key);

    int rc = write_new_file(key_path, secret_text, 0600, err, errlen);
    explicit_bzero(secret_text, sizeof secret_text);
    if (rc != 0)
        return -1;
    if (write_new_file(pub_path, public_text, 0644, err, errlen) != 0) {
        unlink(key_path);
        return -1;
    }
    return 0;
}

/* True for a blank line or a comment line. No Z85 key starts with '#',
 * because the first character of a Z85 group encodes at most index 82 of
 * the 85-character alphabet, and '#' is the last. */
static bool line_is_comment(const char *line)
{
    line += strspn(line, " \t\r\n");
    return *line == '\0' || *line == '#';
}

/* Splits line into at most max whitespace-separated tokens, in place.
 * Returns the number of tokens, or max + 1 when there are more. */
static int split_tokens(char *line, char **tokens, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *token = strtok_r(line, " \t\r\n", &save); token != NULL;
         token = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == max)
            return max + 1;
        tokens[n++] = token;
    }
    return n;
}

/* Opens a key file and checks that it is a regular file. With secret set,
 * also that group and others have no access to it. */
static FILE *open_key_file(const char *path, bool secret, char *err, size_t errlen)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        hpo_error(err, errlen, "cannot open key file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(file), &st) != 0 || !S_ISREG(st.st_mode)) {
        hpo_error(err, errlen, "key file %s is not a regular file", path);
        fclose(file);
        return NULL;
    }
    if (secret && (st.st_mode & 077) != 0) {
        hpo_error(err, errlen, "secret key file %s has mode %04o, so group or others "
                  "may access it; run chmod 600 %s and replace the key if others "
                  "could have read it", path, (unsigned)(st.st_mode & 07777), path);
        fclose(file);
        return NULL;
    }
    return file;
}

/* Reads one line into buf. Returns 1 for a line, 0 at the end of the file
 * and -1 for a line longer than the buffer. */
static int read_line(FILE *file, char *buf, size_t size)
{
    if (fgets(buf, (int)size, file) == NULL)
        return 0;
    if (strchr(buf, '\n') == NULL && !feof(file))
        return -1;
    return 1;
}

/* Parses the lines of a secret key file into pair. */
static int parse_keypair(FILE *file, const char *path, hpo_curve_keypair *pair,
                         char *err, size_t errlen)
{
    char line[LINE_MAX_BYTES];
    int number = 0, rc;
    while ((rc = read_line(file, line, sizeof line)) > 0) {
        number++;
        if (line_is_comment(line))
            continue;
        char *tokens[2];
        if (split_tokens(line, tokens, 2) != 2)
            return hpo_error(err, errlen, "%s:%d: expected \"public-key KEY\" or "
                             "\"secret-key KEY\"", path, number);
        char *target = NULL;
        if (strcmp(tokens[0], "public-key") == 0)
            target = pair->public_key;
        else if (strcmp(tokens[0], "secret-key") == 0)
            target = pair->secret_key;
        else
            return hpo_error(err, errlen, "%s:%d: unknown field \"%.32s\"; expected "
                             "public-key or secret-key", path, number, tokens[0]);
        /* The value is not echoed: it may be the secret key. */
        if (!hpo_curve_key_valid(tokens[1]))
            return hpo_error(err, errlen, "%s:%d: %s is not a %d-character Z85 key",
                             path, number, tokens[0], HPO_CURVE_KEY_CHARS);
        if (target[0] != '\0')
            return hpo_error(err, errlen, "%s:%d: %s appears twice", path, number,
                             tokens[0]);
        memcpy(target, tokens[1], HPO_CURVE_KEY_CHARS + 1);
    }
    explicit_bzero(line, sizeof line);
    if (rc < 0)
        return hpo_error(err, errlen, "%s:%d: line longer than %d bytes", path,
                         number + 1, LINE_MAX_BYTES - 1);
    return 0;
}

int hpo_curve_keypair_load(const char *path, hpo_curve_keypair *pair,
                           char *err, size_t errlen)
{
    memset(pair, 0, sizeof *pair);
    FILE *file = open_key_file(path, true, err, errlen);
    if (file == NULL)
        return -1;
    int rc = parse_keypair(file, path, pair, err, errlen);
    fclose(file);
    if (rc != 0)
        goto fail;

    if (pair->secret_key[0] == '\0' || pair->public_key[0] == '\0') {
        hpo_error(err, errlen, "%s lacks a %s line; expected a secret key file as "
                  "written by hpoctl keygen (PREFIX.key)", path,
                  pair->secret_key[0] == '\0' ? "secret-key" : "public-key");
        goto fail;
    }
    char derived[HPO_CURVE_KEY_CHARS + 1];
    if (zmq_curve_public(derived, pair->secret_key) != 0) {
        hpo_error(err, errlen, "deriving the public key of %s failed: %s", path,
                  zmq_strerror(errno));
        goto fail;
    }
    if (strcmp(derived, pair->public_key) != 0) {
        hpo_error(err, errlen, "%s: the public-key line does not belong to the "
                  "secret key; the file was edited or mixed from two key pairs", path);
        goto fail;
    }
    return 0;

fail:
    hpo_curve_keypair_clear(pair);
    return -1;
}

int hpo_curve_public_key_load(const char *path, char *key, char *err, size_t errlen)
{
    key[0] = '\0';
    FILE *file = open_key_file(path, false, err, errlen);
    if (file == NULL)
        return -1;

    char line[LINE_MAX_BYTES];
    int number = 0, rc;
    while ((rc = read_line(file, line, sizeof line)) > 0) {
        number++;
        if (!line_is_comment(line))
            break;
    }
    fclose(file);
    if (rc < 0)
        return hpo_error(err, errlen, "%s:%d: line longer than %d bytes", path,
                         number + 1, LINE_MAX_BYTES - 1);
    if (rc == 0)
        return hpo_error(err, errlen, "%s contains no public key; expected a public "
                         "key file as written by hpoctl keygen (PREFIX.pub)", path);

    /* Text after the key is ignored, so an authorized-keys line works too. */
    char *tokens[1] = {line};
    split_tokens(line, tokens, 1);
    if (!hpo_curve_key_valid(tokens[0]))
        return hpo_error(err, errlen, "%s:%d: \"%.48s\" is not a %d-character Z85 "
                         "public key; expected a public key file as written by "
                         "hpoctl keygen (PREFIX.pub)", path, number, tokens[0],
                         HPO_CURVE_KEY_CHARS);
    memcpy(key, tokens[0], HPO_CURVE_KEY_CHARS + 1);
    return 0;
}

static int set_option(void *sock, int option, const void *value, size_t size,
                      const char *name, char *err, size_t errlen)
{
    if (zmq_setsockopt(sock, option, value, size) != 0)
        return hpo_error(err, errlen, "setting %s failed: %s", name, zmq_strerror(errno));
    return 0;
}

int hpo_curve_settings_apply(void *sock, const hpo_curve_settings *s,
                             char *err, size_t errlen)
{
    if (!zmq_has("curve"))
        return hpo_error(err, errlen, "this libzmq has no CURVE support; install a "
                         "libzmq built with libsodium");

    /* The keys are set as 40-character Z85 strings (41 bytes with the NUL),
     * which libzmq decodes. */
    if (s->server) {
        int one = 1;
        if (set_option(sock, ZMQ_CURVE_SERVER, &one, sizeof one, "ZMQ_CURVE_SERVER",
                       err, errlen) != 0 ||
            set_option(sock, ZMQ_CURVE_SECRETKEY, s->own.secret_key,
                       HPO_CURVE_KEY_CHARS + 1, "ZMQ_CURVE_SECRETKEY", err, errlen) != 0)
            return -1;
        const char *domain = s->zap_domain != NULL ? s->zap_domain : "";
        if (set_option(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain), "ZMQ_ZAP_DOMAIN",
                       err, errlen) != 0)
            return -1;
        /* NOTE: without ZAP_ENFORCE_DOMAIN, libzmq 4.3 accepts every client
         * while no ZAP handler is bound. hpod binds its handler before its
         * sockets and stops it after closing them, so the option is a second
         * line of defense, and a libzmq that lacks it is accepted. */
        zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one);
        return 0;
    }

    if (!hpo_curve_key_valid(s->server_key))
        return hpo_error(err, errlen, "the server's public key is missing or invalid");
    if (set_option(sock, ZMQ_CURVE_SERVERKEY, s->server_key, HPO_CURVE_KEY_CHARS + 1,
                   "ZMQ_CURVE_SERVERKEY", err, errlen) != 0 ||
        set_option(sock, ZMQ_CURVE_PUBLICKEY, s->own.public_key, HPO_CURVE_KEY_CHARS + 1,
                   "ZMQ_CURVE_PUBLICKEY", err, errlen) != 0 ||
        set_option(sock, ZMQ_CURVE_SECRETKEY, s->own.secret_key, HPO_CURVE_KEY_CHARS + 1,
                   "ZMQ_CURVE_SECRETKEY", err, errlen) != 0)
        return -1;
    return 0;
}
