/* Replays every file of the fuzz corpora (tests/fuzz/corpus/<harness>/)
 * through the checks that the fuzz harnesses run (fuzz_checks.h), so that
 * CI checks the seeds and every fixed crash without clang or libFuzzer.
 *
 * The part of a file's name before the first '-' states the expected
 * outcome. In msg_decode, "ok" must decode, and a wire error code such as
 * "invalid_json" must be rejected with exactly that code. In study_parse
 * and model_spec, "ok" must parse and "invalid" must be rejected. Files
 * with other names, such as inputs that libFuzzer found, only have to
 * pass the checks.
 *
 * Two more tests guard the fuzzer's starting points: the msg_decode seeds
 * contain a valid message of every type, and msg.dict lists every message
 * type and worker kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_checks.h"
#include "hpo/error.h"
#include "hpo/protocol.h"

#ifndef HPO_FUZZ_CORPUS_DIR
#error "HPO_FUZZ_CORPUS_DIR must name tests/fuzz/corpus"
#endif
#ifndef HPO_FUZZ_MSG_DICT
#error "HPO_FUZZ_MSG_DICT must name tests/fuzz/msg.dict"
#endif

/* Largest corpus file read; libFuzzer's default -max_len is far below. */
#define FILE_MAX (2 * 1024 * 1024)

typedef struct {
    char name[256];
    uint8_t *data;
    size_t size;
} corpus_file;

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const corpus_file *)a)->name, ((const corpus_file *)b)->name);
}

static void read_file(const char *path, corpus_file *file)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    file->data = malloc(FILE_MAX);
    assert_non_null(file->data);
    file->size = fread(file->data, 1, FILE_MAX, f);
    assert_false(ferror(f));
    fclose(f);
}

/* Reads every regular file of corpus/<harness>, sorted by name. */
static corpus_file *read_corpus(const char *harness, size_t *n)
{
    char dir_path[1024];
    snprintf(dir_path, sizeof dir_path, "%s/%s", HPO_FUZZ_CORPUS_DIR, harness);
    DIR *dir = opendir(dir_path);
    if (dir == NULL)
        fail_msg("cannot open the corpus folder %s", dir_path);

    corpus_file *files = NULL;
    size_t count = 0, capacity = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        if (count == capacity) {
            capacity = capacity == 0 ? 64 : 2 * capacity;
            files = realloc(files, capacity * sizeof *files);
            assert_non_null(files);
        }
        corpus_file *file = &files[count++];
        snprintf(file->name, sizeof file->name, "%s", entry->d_name);
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir_path, entry->d_name);
        read_file(path, file);
    }
    closedir(dir);
    if (count > 0)
        qsort(files, count, sizeof *files, compare_names);
    *n = count;
    return files;
}

static void free_corpus(corpus_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].data);
    free(files);
}

/* The part of a file name before the first '-', e.g. "wrong_type". */
static void expectation_of(const char *name, char *out, size_t size)
{
    size_t len = strcspn(name, "-.");
    snprintf(out, size, "%.*s", (int)len, name);
}

static void test_msg_decode_corpus(void **state)
{
    (void)state;
    size_t n = 0;
    corpus_file *files = read_corpus("msg_decode", &n);
    size_t named = 0, accepted = 0;
    for (size_t i = 0; i < n; i++) {
        char why[HPO_ERR_MAX] = "";
        hpo_proto_status status;
        if (fuzz_check_msg(files[i].data, files[i].size, &status, why, sizeof why) != 0)
            fail_msg("%s: %s", files[i].name, why);
        accepted += status == HPO_PROTO_OK;

        char expected[64];
        expectation_of(files[i].name, expected, sizeof expected);
        hpo_proto_status expected_status;
        if (strcmp(expected, "ok") == 0)
            expected_status = HPO_PROTO_OK;
        else if (hpo_proto_status_parse(expected, &expected_status) != 0)
            continue;
        named++;
        if (status != expected_status)
            fail_msg("%s: expected %s, the decoder returned %s", files[i].name,
                     expected, hpo_proto_status_name(status));
    }
    /* Guards against an empty or misplaced corpus: the seeds hold a valid
     * message of every type and the hand-written bad inputs. */
    assert_true(named >= 60);
    assert_true(accepted >= HPO_MSG_TYPE_COUNT);
    free_corpus(files, n);
}

/* Every message type has a seed that decodes, so that the replay checks
 * each type's round trip and the fuzzer starts from it. */
static void test_msg_corpus_every_type(void **state)
{
    (void)state;
    size_t n = 0;
    corpus_file *files = read_corpus("msg_decode", &n);
    bool seeded[HPO_MSG_TYPE_COUNT] = {false};
    for (size_t i = 0; i < n; i++) {
        char err[HPO_ERR_MAX] = "";
        hpo_msg msg;
        if (hpo_msg_decode(files[i].data, files[i].size, &msg, err, sizeof err) !=
            HPO_PROTO_OK)
            continue;
        if ((int)msg.type >= 0 && msg.type < HPO_MSG_TYPE_COUNT)
            seeded[msg.type] = true;
        hpo_msg_clear(&msg);
    }
    for (int type = 0; type < HPO_MSG_TYPE_COUNT; type++) {
        if (!seeded[type])
            fail_msg("corpus/msg_decode has no valid %s message; add an ok-%s file",
                     hpo_msg_type_name((hpo_msg_type)type),
                     hpo_msg_type_name((hpo_msg_type)type));
    }
    free_corpus(files, n);
}

/* True when the dictionary text has the line "\"WORD\"", the quoted JSON
 * string WORD as libFuzzer's dictionary syntax escapes it. */
static bool dict_has_string(const char *dict, const char *word)
{
    char line[128];
    snprintf(line, sizeof line, "\n\"\\\"%s\\\"\"\n", word);
    return strstr(dict, line) != NULL;
}

/* msg.dict contains every message type and worker kind and the optional
 * fields token and kind, so that the fuzzer reaches each decoder branch
 * quickly. */
static void test_msg_dict_every_word(void **state)
{
    (void)state;
    corpus_file dict = {.name = "msg.dict"};
    read_file(HPO_FUZZ_MSG_DICT, &dict);
    char *text = malloc(dict.size + 2);
    assert_non_null(text);
    text[0] = '\n';
    memcpy(text + 1, dict.data, dict.size);
    text[dict.size + 1] = '\0';

    for (int type = 0; type < HPO_MSG_TYPE_COUNT; type++) {
        const char *name = hpo_msg_type_name((hpo_msg_type)type);
        if (!dict_has_string(text, name))
            fail_msg("msg.dict lacks the message type \"%s\"", name);
    }
    for (int kind = HPO_WORKER_KIND_UNKNOWN + 1; kind < HPO_WORKER_KIND_COUNT; kind++) {
        const char *name = hpo_worker_kind_name((hpo_worker_kind)kind);
        if (!dict_has_string(text, name))
            fail_msg("msg.dict lacks the worker kind \"%s\"", name);
    }
    static const char *const fields[] = {"token", "kind"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!dict_has_string(text, fields[i]))
            fail_msg("msg.dict lacks the field \"%s\"", fields[i]);
    }
    free(text);
    free(dict.data);
}

typedef int (*parse_check)(const uint8_t *data, size_t size, bool *parsed,
                           char *why, size_t whylen);

static void replay_parser(const char *harness, parse_check check)
{
    size_t n = 0;
    corpus_file *files = read_corpus(harness, &n);
    size_t ok = 0, invalid = 0;
    for (size_t i = 0; i < n; i++) {
        char why[HPO_ERR_MAX] = "";
        bool parsed = false;
        if (check(files[i].data, files[i].size, &parsed, why, sizeof why) != 0)
            fail_msg("%s/%s: %s", harness, files[i].name, why);

        char expected[64];
        expectation_of(files[i].name, expected, sizeof expected);
        if (strcmp(expected, "ok") == 0) {
            ok++;
            if (!parsed)
                fail_msg("%s/%s: expected to parse, was rejected", harness,
                         files[i].name);
        } else if (strcmp(expected, "invalid") == 0) {
            invalid++;
            if (parsed)
                fail_msg("%s/%s: expected a rejection, was accepted", harness,
                         files[i].name);
        }
    }
    assert_true(ok >= 3);
    assert_true(invalid >= 3);
    free_corpus(files, n);
}

static void test_study_parse_corpus(void **state)
{
    (void)state;
    replay_parser("study_parse", fuzz_check_study);
}

static void test_model_spec_corpus(void **state)
{
    (void)state;
    replay_parser("model_spec", fuzz_check_model_spec);
}

/* A frame over the limit never reaches the JSON parser. */
static void test_oversized_frame_rejected(void **state)
{
    (void)state;
    size_t size = HPO_MSG_MAX_BYTES + 1;
    uint8_t *data = malloc(size);
    assert_non_null(data);
    memset(data, ' ', size);
    char why[HPO_ERR_MAX] = "";
    hpo_proto_status status;
    assert_int_equal(fuzz_check_msg(data, size, &status, why, sizeof why), 0);
    assert_int_equal(status, HPO_PROTO_TOO_LARGE);
    free(data);
}

int main(void)
{
    fuzz_checks_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_decode_corpus),
        cmocka_unit_test(test_msg_corpus_every_type),
        cmocka_unit_test(test_msg_dict_every_word),
        cmocka_unit_test(test_study_parse_corpus),
        cmocka_unit_test(test_model_spec_corpus),
        cmocka_unit_test(test_oversized_frame_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
