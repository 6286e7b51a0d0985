/* sgemm-probe: measures the GFLOP/s that OpenBLAS's cblas_sgemm reaches on
 * this machine for given matrix shapes, as the reference that
 * bench/train_throughput compares the training engine against.
 *
 *   sgemm-probe [--threads N] [--min-seconds S] [MxNxK ...]
 *
 * Each shape computes C[M][N] = A[M][K] . B[K][N] in row-major float32,
 * once as a warm-up and then repeatedly until at least --min-seconds have
 * passed. One JSON line per shape goes to stdout:
 *
 *   {"probe":"sgemm","m":1024,"n":1024,"k":1024,"threads":2,
 *    "core":"SkylakeX","calls":40,"seconds":0.52,"gflops":165.1,
 *    "best_gflops":171.0}
 *
 * gflops counts 2*M*N*K floating-point operations per call over the whole
 * timed loop; best_gflops is the fastest single call. "core" is the kernel
 * family that OpenBLAS selected, which the OPENBLAS_CORETYPE environment
 * variable overrides. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *out)
{
    fputs("usage: sgemm-probe [--threads N] [--min-seconds S] [MxNxK ...]\n"
          "\n"
          "Measures cblas_sgemm GFLOP/s for each shape (default 1024x1024x1024).\n"
          "\n"
          "  --threads N       OpenBLAS threads (default: OpenBLAS's own choice)\n"
          "  --min-seconds S   minimum timed seconds per shape (default 0.5)\n",
          out);
}

/* Parses "MxNxK" into three dimensions from 1 to 65536. */
static int parse_shape(const char *text, long dims[3])
{
    const char *p = text;
    for (int i = 0; i < 3; i++) {
        char *end = NULL;
        errno = 0;
        dims[i] = strtol(p, &end, 10);
        if (errno != 0 || end == p || dims[i] < 1 || dims[i] > 65536)
            return -1;
        if (i < 2 && *end != 'x')
            return -1;
        if (i == 2 && *end != '\0')
            return -1;
        p = end + 1;
    }
    return 0;
}

/* Fills n floats with values in [-1, 1) from a fixed linear congruential
 * sequence. The values only need to be finite and not all zero. */
static void fill_matrix(float *a, size_t n, unsigned state)
{
    for (size_t i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        a[i] = (float)(state >> 8) / (float)(1u << 23) - 1.0f;
    }
}

/* Times one shape and prints its JSON line. Returns 0, or -1 when the
 * matrices do not fit in memory. */
static int probe_shape(const long dims[3], int threads, double min_seconds)
{
    size_t m = (size_t)dims[0], n = (size_t)dims[1], k = (size_t)dims[2];
    float *a = malloc(m * k * sizeof *a);
    float *b = malloc(k * n * sizeof *b);
    float *c = malloc(m * n * sizeof *c);
    int rc = -1;

    if (a == NULL || b == NULL || c == NULL) {
        fprintf(stderr, "sgemm-probe: out of memory for the %zux%zux%zu matrices; "
                        "choose a smaller shape\n", m, n, k);
        goto cleanup;
    }
    fill_matrix(a, m * k, 1u);
    fill_matrix(b, k * n, 2u);
    memset(c, 0, m * n * sizeof *c);

    /* The warm-up call starts OpenBLAS's threads and touches every page. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f,
                a, (int)k, b, (int)n, 0.0f, c, (int)n);

    double flops_per_call = 2.0 * (double)m * (double)n * (double)k;
    double best = 0.0, start = now_seconds(), elapsed = 0.0;
    long calls = 0;
    while (elapsed < min_seconds || calls == 0) {
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f,
                    a, (int)k, b, (int)n, 0.0f, c, (int)n);
        double t1 = now_seconds();
        if (t1 > t0 && flops_per_call / (t1 - t0) > best)
            best = flops_per_call / (t1 - t0);
        calls++;
        elapsed = t1 - start;
    }

    printf("{\"probe\":\"sgemm\",\"m\":%zu,\"n\":%zu,\"k\":%zu,\"threads\":%d,"
           "\"core\":\"%s\",\"calls\":%ld,\"seconds\":%.6f,\"gflops\":%.2f,"
           "\"best_gflops\":%.2f}\n",
           m, n, k, threads, openblas_get_corename(), calls, elapsed,
           flops_per_call * (double)calls / elapsed * 1e-9, best * 1e-9);
    fflush(stdout);
    rc = 0;

cleanup:
    free(a);
    free(b);
    free(c);
    return rc;
}

int main(int argc, char **argv)
{
    long threads = 0;
    double min_seconds = 0.5;
    int first_shape = argc;

    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            errno = 0;
            threads = strtol(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || threads < 1 || threads > 1024) {
                fprintf(stderr, "sgemm-probe: invalid --threads \"%s\": expected an integer "
                                "from 1 to 1024\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--min-seconds") == 0 && i + 1 < argc) {
            errno = 0;
            min_seconds = strtod(argv[++i], &end);
            if (errno != 0 || *end != '\0' || !(min_seconds >= 0.0 && min_seconds <= 600.0)) {
                fprintf(stderr, "sgemm-probe: invalid --min-seconds \"%s\": expected a "
                                "number from 0 to 600\n", argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "sgemm-probe: unknown or incomplete option \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            first_shape = i;
            break;
        }
    }

    /* Check every shape before timing any, so a typo fails fast. */
    long dims[3];
    for (int i = first_shape; i < argc; i++) {
        if (parse_shape(argv[i], dims) < 0) {
            fprintf(stderr, "sgemm-probe: invalid shape \"%s\": expected MxNxK with each "
                            "dimension from 1 to 65536, e.g. 1024x1024x1024\n", argv[i]);
            return 2;
        }
    }

    if (threads > 0)
        openblas_set_num_threads((int)threads);
    int used_threads = openblas_get_num_threads();

    if (first_shape == argc) {
        const long square[3] = {1024, 1024, 1024};
        return probe_shape(square, used_threads, min_seconds) < 0 ? 1 : 0;
    }
    for (int i = first_shape; i < argc; i++) {
        parse_shape(argv[i], dims);
        if (probe_shape(dims, used_threads, min_seconds) < 0)
            return 1;
    }
    return 0;
}
