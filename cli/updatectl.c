/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

const char *program_name = UPDATECTL_NAME;

int cli_report(const char *what, const UpkErr *e)
{
        bool rejected;
        int status = upk_err_exit_status(e, &rejected);

        fprintf(stderr, "%s: %s%s%s%s\n", program_name, what ?: "", what ? ": " : "",
                rejected ? "rejected: " : "", e->msg[0] ? e->msg : "unknown error");
        return status;
}

int cli_usage_error(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "%s: ", program_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s --help'.\n", program_name);
        return EXIT_USAGE;
}

static void help(void)
{
        printf("%s — the upkeep update agent's command line\n\n"
               "Bundles (no daemon needed):\n"
               "  bundle create --manifest M.json --cert C.pem --key K.pem [--chain I.pem]\n"
               "                [--payload-dir DIR] -o OUT.upk\n"
               "  bundle info [--keyring CA.pem] [--crl CRL.pem] [--json] B.upk\n"
               "  bundle verify --keyring CA.pem [--crl CRL.pem] B.upk\n"
               "  bundle extract --keyring CA.pem [--crl CRL.pem] B.upk DIR\n\n"
               "Options:\n"
               "  -h --help     show this help\n"
               "     --version  show the version\n\n"
               "See %s(1).\n",
               program_name, program_name);
}

int main(int argc, char *argv[])
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int c;

        /* Global options stop at the first verb; the verb parses its own. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case 'V':
                        printf("upkeep %s\n", PACKAGE_VERSION);
                        return EXIT_OK;
                default:
                        return cli_usage_error("unknown option");
                }
        }
        if (optind >= argc)
                return cli_usage_error("no command given");
        if (streq(argv[optind], "bundle"))
                return bundle_main(argc - optind, argv + optind);
        if (streq(argv[optind], "help")) {
                help();
                return EXIT_OK;
        }
        return cli_usage_error("unknown command \"%s\"", argv[optind]);
}
