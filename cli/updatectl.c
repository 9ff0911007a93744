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
                rejected ? "rejected: " : "", e->msg[0] ? e->msg : strerror(e->code < 0 ? -e->code : EIO));
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

int cli_parse_verb(int argc, char *argv[], unsigned allowed, int min_pos, int max_pos, CliArgs *args)
{
        enum {
                ARG_JSON = 0x100,
                ARG_NO_BLOCK,
                ARG_ALLOW_DOWNGRADE,
        };
        static const struct option options[] = {
                { "json", no_argument, NULL, ARG_JSON },
                { "no-block", no_argument, NULL, ARG_NO_BLOCK },
                { "allow-downgrade", no_argument, NULL, ARG_ALLOW_DOWNGRADE },
                {},
        };
        static const struct {
                int arg;
                unsigned bit;
                const char *name;
        } map[] = {
                { ARG_JSON, CLI_OPT_JSON, "--json" },
                { ARG_NO_BLOCK, CLI_OPT_NO_BLOCK, "--no-block" },
                { ARG_ALLOW_DOWNGRADE, CLI_OPT_ALLOW_DOWNGRADE, "--allow-downgrade" },
        };
        const char *verb = argv[0];
        int c;

        optind = 0;
        opterr = 0;
        /* Options and operands may mix ("install F --no-block"); "--" ends the options. */
        while ((c = getopt_long(argc, argv, "-", options, NULL)) >= 0) {
                if (c == 1) {
                        if (args->n_pos >= max_pos)
                                return cli_usage_error("%s: unexpected argument \"%s\"", verb, optarg);
                        args->pos[args->n_pos++] = optarg;
                        continue;
                }
                if (c == '?')
                        return cli_usage_error("%s: unknown option %s", verb, argv[optind - 1]);
                for (size_t i = 0; i < ELEMENTSOF(map); i++)
                        if (map[i].arg == c)
                                args->given |= map[i].bit;
                args->json = args->json || c == ARG_JSON;
                args->no_block = args->no_block || c == ARG_NO_BLOCK;
                args->allow_downgrade = args->allow_downgrade || c == ARG_ALLOW_DOWNGRADE;
        }
        for (; optind < argc; optind++) {
                if (args->n_pos >= max_pos)
                        return cli_usage_error("%s: unexpected argument \"%s\"", verb, argv[optind]);
                args->pos[args->n_pos++] = argv[optind];
        }
        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if ((args->given & map[i].bit) && !(allowed & map[i].bit))
                        return cli_usage_error("%s: option %s does not apply here", verb, map[i].name);
        if (args->n_pos < min_pos)
                return cli_usage_error("%s: missing argument", verb);
        return 0;
}

static void help(void)
{
        printf("%s — the upkeep update agent's command line\n\n", program_name);
#if HAVE_DAEMON
        printf("Daemon commands (upkeepd on the system bus):\n"
               "  [status] [--json]          the update state, versions, support end\n"
               "  check                      ask the update source for a new version\n"
               "  install [FILE|URL|-] [--no-block] [--allow-downgrade]\n"
               "                             install a bundle (without one: the available\n"
               "                             update; -: from standard input), following its\n"
               "                             progress\n"
               "  cancel                     stop the running install\n"
               "  rollback                   boot the other slot again\n"
               "  mark-good                  mark the booted slot good\n"
               "  acknowledge                the rollback of an update was seen: hide it\n"
               "  decline [REASON]           refuse the update that waits for consent\n"
               "  history [--json]           past installs, confirmations, rollbacks\n"
               "  slots [--json]             the A/B slots and their state\n"
               "  monitor                    print every change until interrupted\n"
               "  support [--json]           security support: until when, how, how verified\n"
               "  postpone DURATION          no automatic install for DURATION (6h, 1d, 1h30m)\n"
               "  enable | disable           turn automatic updates on or off\n\n");
#endif
        printf("Bundles (offline: no daemon needed):\n"
               "  bundle create --manifest M.json --cert C.pem --key K.pem [--chain I.pem]\n"
               "                [--payload-dir DIR] [--allow-any-eku] [--format 1|2] [--chunk-size N]\n"
               "                [--block-size N] [--compression none|zstd] [--zstd-level N] [--window N]\n"
               "                [--jobs N] -o OUT.upk\n"
               "  bundle info [--keyring CA.pem] [--crl CRL.pem] [--allow-any-eku] [--json] B.upk\n"
               "  bundle verify --keyring CA.pem [--crl CRL.pem] [--allow-any-eku] B.upk\n"
               "  bundle extract --keyring CA.pem [--crl CRL.pem] [--allow-any-eku] B.upk DIR\n"
               "                (--allow-any-eku: also a signer without codeSigning; weaker)\n\n"
#if HAVE_TUF
               "TUF repositories (the vendor's side of [source] type = tuf):\n"
               "  repo init DIR [--key-type ed25519|ecdsa|rsa] [--threshold ROLE=N]\n"
               "                [--expires ROLE=DURATION] [--key ROLE=PEM]\n"
               "  repo add DIR B.upk... --keyring CA.pem [--crl CRL.pem] [--key PEM] [--offline]\n"
               "                [--role NAME]   (--role: to a delegated role)\n"
               "  repo remove DIR NAME... [--key PEM] [--offline] [--role NAME]\n"
               "  repo rotate DIR ROLE [--key-type T] [--threshold N] [--new-key PEM] [--key PEM]\n"
               "                [--offline]\n"
               "  repo sign DIR root|targets [--key PEM]   (offline keys; publishes once complete)\n"
               "  repo delegate DIR NAME --paths PATTERN... [--key PEM] [--threshold N]\n"
               "                [--key-type T] [--terminating]\n"
               "  repo timestamp DIR [--force] [--key PEM]   (exit 3: nothing re-signed)\n"
               "  repo status DIR\n\n"
#endif
               "Options:\n"
               "  -h --help     show this help\n"
               "     --version  show the version\n"
#if HAVE_DAEMON
               "     --json     print JSON (status, history, slots, support)\n"
               "     --no-block do not wait for the end of an install\n"
#else
               "\nThis build has only the offline commands (-Ddaemon=false).\n"
#endif
               "\nSee %s(1).\n",
               program_name);
}

typedef int (*verb_func_t)(int argc, char *argv[], CliArgs *args);

int main(int argc, char *argv[])
{
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_NO_BLOCK,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                { "no-block", no_argument, NULL, ARG_NO_BLOCK },
                {},
        };
        static const struct {
                const char *name;
                verb_func_t func;
        } verbs[] = {
#if HAVE_DAEMON
                { "status", status_main },
                { "check", check_main },
                { "install", install_main },
                { "cancel", manage_main },
                { "rollback", manage_main },
                { "mark-good", manage_main },
                { "acknowledge", manage_main },
                { "decline", decline_main },
                { "history", history_main },
                { "slots", slots_main },
                { "monitor", monitor_main },
                { "support", support_main },
                { "postpone", postpone_main },
                { "enable", auto_update_main },
                { "disable", auto_update_main },
#endif
                { NULL, NULL },
        };
        CliArgs args = {};
        char *status_argv[] = { (char *)"status", NULL };
        int c;

        /* Global options stop at the first verb; the verb parses its own. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case ARG_VERSION:
                        printf("upkeep %s\n", PACKAGE_VERSION);
                        return EXIT_OK;
                case ARG_JSON:
                        args.json = true;
                        args.given |= CLI_OPT_JSON;
                        break;
                case ARG_NO_BLOCK:
                        args.no_block = true;
                        args.given |= CLI_OPT_NO_BLOCK;
                        break;
                default:
                        return cli_usage_error("unknown option %s", argv[optind - 1]);
                }
        }
        if (optind >= argc) { /* no verb: status */
#if HAVE_DAEMON
                return status_main(1, status_argv, &args);
#else
                (void)status_argv;
                return cli_usage_error("no command given (this build has only the offline commands)");
#endif
        }
        if (streq(argv[optind], "bundle")) {
                if (args.given)
                        return cli_usage_error("bundle: global options do not apply; give them after the "
                                               "bundle command");
                return bundle_main(argc - optind, argv + optind);
        }
#if HAVE_TUF
        if (streq(argv[optind], "repo")) {
                if (args.given)
                        return cli_usage_error("repo: global options do not apply; give them after the "
                                               "repo command");
                return repo_main(argc - optind, argv + optind);
        }
#endif
        if (streq(argv[optind], "help")) {
                help();
                return EXIT_OK;
        }
        for (size_t i = 0; verbs[i].name; i++)
                if (streq(argv[optind], verbs[i].name))
                        return verbs[i].func(argc - optind, argv + optind, &args);
        return cli_usage_error("unknown command \"%s\"%s", argv[optind],
                               HAVE_DAEMON ? ""
                                           : " (this build has only the offline commands: -Ddaemon=false)");
}
