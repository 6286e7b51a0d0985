/* `hpoctl keygen`: writes a CURVE key pair for hpod, hpo-worker or hpoctl. */
#ifndef HPO_DAEMON_HPOCTL_KEYGEN_H
#define HPO_DAEMON_HPOCTL_KEYGEN_H

/* Runs `hpoctl keygen --out PREFIX`; argv[0] is "keygen". Returns the
 * process exit status: 0, 1 when the files cannot be written, 2 for bad
 * arguments. */
int hpoctl_keygen_main(int argc, char **argv);

#endif
