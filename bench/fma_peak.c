/* fma-peak: measures the machine's float32 fused multiply-add peak, the
 * ceiling that bench/train_throughput reports the engine's GFLOP/s
 * against.
 *
 *   fma-peak [--threads N] [--iterations N] [--repeats N]
 *
 * Every thread runs 16 independent FMA chains in the widest vector unit
 * the CPU offers (AVX-512, else AVX2 with FMA, else plain 4-float vectors
 * as a portable fallback). With 16 chains, a core with two FMA units of
 * 4-cycle latency has enough independent work to issue an FMA on each unit
 * every cycle. The threads wait at a start signal and the wall time runs
 * from that signal to the last thread's end. The best of
 * --repeats runs goes to stdout as one JSON line:
 *
 *   {"probe":"fma_peak","isa":"avx512f","threads":2,"chains":16,
 *    "iterations":268435456,"seconds":1.05,"gflops":524.3}
 *
 * One FMA counts as 2 floating-point operations per vector lane. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FMA_PEAK_X86 1
#endif

enum { CHAINS = 16 };

typedef float (*chain_kernel)(long iterations);

/* Start signal shared by the workers of one run. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int go;    /* 1: start the chains, -1: return without running them */
} start_gate;

typedef struct {
    chain_kernel kernel;
    long iterations;
    start_gate *gate;
    float result; /* keeps the compiler from dropping the chains */
} worker_args;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each chain computes acc = acc * a + b, which converges to b / (1 - a)
 * and so never overflows or becomes subnormal. The chains are written out
 * one by one so that every accumulator stays in a register. */
#define CHAIN_STEPS(fma)                                                      \
    do {                                                                      \
        c0 = fma(c0, a, b); c1 = fma(c1, a, b); c2 = fma(c2, a, b);           \
        c3 = fma(c3, a, b); c4 = fma(c4, a, b); c5 = fma(c5, a, b);           \
        c6 = fma(c6, a, b); c7 = fma(c7, a, b); c8 = fma(c8, a, b);           \
        c9 = fma(c9, a, b); c10 = fma(c10, a, b); c11 = fma(c11, a, b);       \
        c12 = fma(c12, a, b); c13 = fma(c13, a, b); c14 = fma(c14, a, b);     \
        c15 = fma(c15, a, b);                                                 \
    } while (0)

/* Distinct starting values, so that the compiler cannot merge the chains. */
#define CHAIN_INIT(type, set1)                                                \
    type c0 = set1(0.0f), c1 = set1(0.01f), c2 = set1(0.02f),                 \
         c3 = set1(0.03f), c4 = set1(0.04f), c5 = set1(0.05f),                \
         c6 = set1(0.06f), c7 = set1(0.07f), c8 = set1(0.08f),                \
         c9 = set1(0.09f), c10 = set1(0.10f), c11 = set1(0.11f),              \
         c12 = set1(0.12f), c13 = set1(0.13f), c14 = set1(0.14f),             \
         c15 = set1(0.15f)

#define CHAIN_SUM(add)                                                        \
    add(add(add(add(c0, c1), add(c2, c3)), add(add(c4, c5), add(c6, c7))),    \
        add(add(add(c8, c9), add(c10, c11)), add(add(c12, c13), add(c14, c15))))

#ifdef FMA_PEAK_X86
__attribute__((target("avx512f")))
static float chains_avx512(long iterations)
{
    const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
    CHAIN_INIT(__m512, _mm512_set1_ps);
    for (long i = 0; i < iterations; i++)
        CHAIN_STEPS(_mm512_fmadd_ps);
    return _mm512_reduce_add_ps(CHAIN_SUM(_mm512_add_ps));
}

__attribute__((target("avx2,fma")))
static float chains_avx2(long iterations)
{
    const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
    CHAIN_INIT(__m256, _mm256_set1_ps);
    for (long i = 0; i < iterations; i++)
        CHAIN_STEPS(_mm256_fmadd_ps);
    float lanes[8];
    _mm256_storeu_ps(lanes, CHAIN_SUM(_mm256_add_ps));
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] +
           lanes[7];
}
#endif

/* Portable fallback: a multiply and an add on 4-float vectors, which the
 * compiler may or may not fuse. */
typedef float vec4 __attribute__((vector_size(16)));
#define VEC4_FMA(x, y, z) ((x) * (y) + (z))
#define VEC4_ADD(x, y) ((x) + (y))
#define VEC4_SET1(x) ((vec4){(x), (x), (x), (x)})

static float chains_generic(long iterations)
{
    const vec4 a = {0.999f, 0.999f, 0.999f, 0.999f};
    const vec4 b = {0.001f, 0.001f, 0.001f, 0.001f};
    CHAIN_INIT(vec4, VEC4_SET1);
    for (long i = 0; i < iterations; i++)
        CHAIN_STEPS(VEC4_FMA);
    vec4 s = CHAIN_SUM(VEC4_ADD);
    return s[0] + s[1] + s[2] + s[3];
}

/* Picks the widest kernel the CPU runs and stores its vector width in
 * floats in *lanes. */
static chain_kernel select_kernel(const char **isa, int *lanes)
{
#ifdef FMA_PEAK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *isa = "avx512f";
        *lanes = 16;
        return chains_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *isa = "avx2+fma";
        *lanes = 8;
        return chains_avx2;
    }
#endif
    *isa = "generic";
    *lanes = 4;
    return chains_generic;
}

static void *run_worker(void *arg)
{
    worker_args *w = arg;
    pthread_mutex_lock(&w->gate->lock);
    while (w->gate->go == 0)
        pthread_cond_wait(&w->gate->changed, &w->gate->lock);
    int go = w->gate->go;
    pthread_mutex_unlock(&w->gate->lock);

    if (go > 0)
        w->result = w->kernel(w->iterations);
    return NULL;
}

static void open_gate(start_gate *gate, int go)
{
    pthread_mutex_lock(&gate->lock);
    gate->go = go;
    pthread_cond_broadcast(&gate->changed);
    pthread_mutex_unlock(&gate->lock);
}

/* Runs `threads` workers once and returns the wall seconds, or -1 when a
 * thread cannot be started. */
static double run_once(chain_kernel kernel, int threads, long iterations)
{
    static pthread_t ids[1024];
    static worker_args args[1024];
    start_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int started = 0;

    for (; started < threads; started++) {
        args[started] = (worker_args){kernel, iterations, &gate, 0.0f};
        if (pthread_create(&ids[started], NULL, run_worker, &args[started]) != 0)
            break;
    }
    if (started < threads) {
        open_gate(&gate, -1);
        for (int i = 0; i < started; i++)
            pthread_join(ids[i], NULL);
        return -1.0;
    }

    /* All threads exist and wait at the gate, so the clock starts at a
     * common point. */
    double start = now_seconds();
    open_gate(&gate, 1);
    float sink = 0.0f;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        sink += args[i].result;
    }
    double seconds = now_seconds() - start;

    /* Every lane converges to 1, so a sum that is not positive means a
     * broken kernel. */
    if (!(sink > 0.0f))
        fprintf(stderr, "fma-peak: unexpected chain sum %g\n", (double)sink);
    return seconds;
}

static int parse_long_option(const char *name, const char *text, long min, long max,
                             long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "fma-peak: invalid %s \"%s\": expected an integer from %ld to %ld\n",
                name, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long threads = 1, iterations = 1L << 27, repeats = 3;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs("usage: fma-peak [--threads N] [--iterations N] [--repeats N]\n"
                  "\n"
                  "Measures float32 FMA GFLOP/s with 16 independent chains per thread.\n"
                  "\n"
                  "  --threads N      threads, one per core to measure (default 1)\n"
                  "  --iterations N   loop iterations per thread (default 134217728)\n"
                  "  --repeats N      runs; the fastest is reported (default 3)\n",
                  stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fma-peak: unknown or incomplete option \"%s\"; see --help\n",
                    argv[i]);
            return 2;
        }
        const char *value = argv[++i];
        int rc;
        if (strcmp(argv[i - 1], "--threads") == 0) {
            rc = parse_long_option("--threads", value, 1, 1024, &threads);
        } else if (strcmp(argv[i - 1], "--iterations") == 0) {
            rc = parse_long_option("--iterations", value, 1, 1L << 40, &iterations);
        } else if (strcmp(argv[i - 1], "--repeats") == 0) {
            rc = parse_long_option("--repeats", value, 1, 1000, &repeats);
        } else {
            fprintf(stderr, "fma-peak: unknown option \"%s\"; see --help\n", argv[i - 1]);
            return 2;
        }
        if (rc < 0)
            return 2;
    }

    const char *isa = NULL;
    int lanes = 0;
    chain_kernel kernel = select_kernel(&isa, &lanes);

    double best = 0.0;
    for (long r = 0; r < repeats; r++) {
        double seconds = run_once(kernel, (int)threads, iterations);
        if (seconds < 0.0) {
            fprintf(stderr, "fma-peak: could not start %ld threads\n", threads);
            return 1;
        }
        if (best == 0.0 || seconds < best)
            best = seconds;
    }

    double flops = 2.0 * lanes * CHAINS * (double)iterations * (double)threads;
    printf("{\"probe\":\"fma_peak\",\"isa\":\"%s\",\"threads\":%ld,\"chains\":%d,"
           "\"iterations\":%ld,\"seconds\":%.6f,\"gflops\":%.2f}\n",
           isa, threads, CHAINS, iterations, best, flops / best * 1e-9);
    return 0;
}
