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
    fputs("usage: hpo-worker train --model FILE --data DIR [options]\n"
          "       hpo-worker [serve] --connect ENDPOINT [--data DIR] [options]\n"
          "       hpo-worker --help\n"
          "\n"
          "Commands:\n"
          "  train    train one model spec locally (hpo-worker train --help)\n"
          "  serve    train the trials of an hpod coordinator; the default when the\n"
          "           first argument is an option (hpo-worker serve --help)\n",
          out);
}

/* Restarts the program with OMP_WAIT_POLICY=passive unless the variable
 * is set. libgomp reads it once, before main(), so setting it needs a new
 * exec. With the default spin-waiting, a 2-thread worker on a 2-CPU
 * machine that also ran other processes trained the small model 4 to 5
 * times slower than with passive waiting. If the exec fails, the program
 * goes on with the default. */
static void use_passive_openmp_waits(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") != NULL)
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    use_passive_openmp_waits(argv);

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
