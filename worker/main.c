/* hpo-worker: trains CIFAR-10 models, standalone (`train`) or for a
 * coordinator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hpo/worker_service.h"
#include "train_cli.h"

static void usage(FILE *out)
{
    fputs("usage: hpo-worker train --model FILE [--data DIR] [options]\n"
          "       hpo-worker [serve] --connect ENDPOINT [--data DIR] [options]\n"
          "       hpo-worker --help\n"
          "\n"
          "Commands:\n"
          "  train    train one model spec locally (hpo-worker train --help)\n"
          "  serve    train the trials of an hpod coordinator; the default when the\n"
          "           first argument is an option (hpo-worker serve --help)\n",
          out);
}

/* Restarts the program with GOMP_SPINCOUNT=10000 unless OMP_WAIT_POLICY
 * or GOMP_SPINCOUNT is set. libgomp reads them once, before main(), so
 * setting them needs a new exec. An idle OpenMP thread then spins about
 * 10,000 rounds for the next layer's work before it sleeps, instead of
 * libgomp's default 300,000. On a quiet 2-CPU machine, a 2-thread run of
 * the small model trained about 15% faster than with no spinning
 * (OMP_WAIT_POLICY=passive). With a second 2-thread worker on the same
 * CPUs it ran about 30% slower than passive waiting. The default count
 * sometimes ran 10 times slower there. docs/benchmarks.md has the figures.
 * If the exec fails, the program goes on with libgomp's default. */
static void bound_openmp_spin_waits(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") != NULL || getenv("GOMP_SPINCOUNT") != NULL)
        return;
    if (setenv("GOMP_SPINCOUNT", "10000", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    bound_openmp_spin_waits(argv);

    if (argc >= 2 && strcmp(argv[1], "train") == 0)
        return hpo_train_cli_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return hpo_worker_service_main(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && strncmp(argv[1], "--", 2) == 0)
        return hpo_worker_service_main(argc, argv);
    if (argc >= 2)
        fprintf(stderr, "hpo-worker: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
