/* `hpo-worker train`: trains one model locally and prints Keras-style
 * progress, or JSON lines with --json. */
#ifndef HPO_WORKER_TRAIN_CLI_H
#define HPO_WORKER_TRAIN_CLI_H

/* Runs the subcommand; argv[0] is "train". Returns the process exit code. */
int hpo_train_cli_main(int argc, char **argv);

#endif
