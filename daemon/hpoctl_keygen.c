/* `hpoctl keygen --out PREFIX`: a new CURVE key pair in PREFIX.key and
 * PREFIX.pub (formats in include/hpo/curve.h and docs/security.md). */
#include "hpoctl_keygen.h"

#include <getopt.h>
#include <stdio.h>

#include "hpo/curve.h"
#include "hpo/error.h"

static void print_usage(FILE *out)
{
    fprintf(out,
        "Usage: hpoctl keygen --out PREFIX\n"
        "Writes a new CURVE key pair: PREFIX.key, the secret key file (mode\n"
        "0600), and PREFIX.pub, the public key. Existing files are never\n"
        "overwritten. hpod takes its pair with --curve-secret PREFIX.key;\n"
        "workers and hpoctl take theirs with --curve-secret and hpod's\n"
        "public key with --server-key. List each client's public key in\n"
        "hpod's --authorized-keys file with its role.\n");
}

int hpoctl_keygen_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *prefix = NULL;

    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': prefix = optarg; break;
        case 'h': print_usage(stdout); return 0;
        default:
            fprintf(stderr, "hpoctl keygen: unknown or incomplete option \"%s\"; "
                    "see hpoctl keygen --help\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hpoctl keygen: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (prefix == NULL || prefix[0] == '\0') {
        fprintf(stderr, "hpoctl keygen: --out PREFIX is missing; the key pair is "
                "written to PREFIX.key and PREFIX.pub\n");
        return 2;
    }

    char err[HPO_ERR_MAX];
    hpo_curve_keypair pair;
    if (hpo_curve_keypair_generate(&pair, err, sizeof err) != 0 ||
        hpo_curve_keypair_write(&pair, prefix, err, sizeof err) != 0) {
        hpo_curve_keypair_clear(&pair);
        fprintf(stderr, "hpoctl keygen: %s\n", err);
        return 1;
    }
    printf("wrote %s.key (secret key, mode 0600) and %s.pub\n"
           "public key: %s\n", prefix, prefix, pair.public_key);
    hpo_curve_keypair_clear(&pair);
    return fflush(stdout) == 0 ? 0 : 1;
}
