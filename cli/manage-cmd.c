/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* updatectl check | cancel | rollback | mark-good | acknowledge | postpone | enable | disable: the acting
 * methods. */
#include <stdio.h>

#include "cli.h"
#include "conf.h"
#include "format.h"
#include "parse-util.h"

int check_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *available;
        int r;

        r = cli_parse_verb(argc, argv, 0, 0, 0, args);
        if (r != 0)
                return r;
        r = client_connect(&bus);
        if (r != 0)
                return r;
        r = client_call(bus, "Check", &error, &reply, NULL);
        if (r >= 0)
                r = bus_read_string(reply, &available);
        if (r < 0)
                return client_report(NULL, r, &error);
        if (isempty(available))
                printf("up to date\n");
        else
                printf("update available: %s\n", available);
        return EXIT_OK;
}

int manage_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *verb = argv[0], *slot;
        int r;

        r = cli_parse_verb(argc, argv, 0, 0, 0, args);
        if (r != 0)
                return r;
        r = client_connect(&bus);
        if (r != 0)
                return r;

        if (streq(verb, "cancel")) {
                _cleanup_free_ char *state = NULL;

                /* Only what to print depends on it: the daemon decides what Cancel does. */
                (void)sd_bus_get_property_string(bus, UPKEEP_BUS_NAME, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE,
                                                 "State", NULL, &state);
                r = client_call(bus, "Cancel", &error, NULL, NULL);
                if (r < 0)
                        return client_report(NULL, r, &error);
                if (state && streq(state, "pending-reboot"))
                        printf("cancelled the update that waited for its reboot; the booted slot stays "
                               "primary\n");
                else if (state && streq(state, "checking"))
                        printf("cancelling the running check\n");
                else
                        printf("cancelling the running install\n");
        } else if (streq(verb, "acknowledge")) {
                const char *version;

                r = client_call(bus, "AcknowledgeRollback", &error, &reply, NULL);
                if (r >= 0)
                        r = bus_read_string(reply, &version);
                if (r < 0)
                        return client_report(NULL, r, &error);
                if (isempty(version))
                        printf("no rollback to acknowledge\n");
                else
                        printf("acknowledged the rollback of version %s\n", version);
        } else if (streq(verb, "rollback")) {
                r = client_call(bus, "Rollback", &error, &reply, NULL);
                if (r >= 0)
                        r = bus_read_string(reply, &slot);
                if (r < 0)
                        return client_report(NULL, r, &error);
                printf("rolled back: slot %s boots next\n", slot);
        } else {
                r = client_call(bus, "MarkGood", &error, NULL, NULL);
                if (r < 0)
                        return client_report(NULL, r, &error);
                printf("marked the booted slot good\n");
        }
        return EXIT_OK;
}

int decline_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *reason;
        int r;

        r = cli_parse_verb(argc, argv, 0, 0, 1, args);
        if (r != 0)
                return r;
        reason = args->n_pos > 0 ? args->pos[0] : "";
        r = client_connect(&bus);
        if (r != 0)
                return r;
        r = client_call(bus, "Decline", &error, NULL, "s", reason);
        if (r < 0)
                return client_report(NULL, r, &error);
        printf("declined the update that waited for consent\n");
        return EXIT_OK;
}

int postpone_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char when[FORMAT_TIMESTAMP_MAX];
        uint64_t d, until;
        int r;

        r = cli_parse_verb(argc, argv, 0, 1, 1, args);
        if (r != 0)
                return r;
        r = parse_duration_usec(args->pos[0], &d);
        if (r < 0)
                return cli_usage_error(
                        "postpone: \"%s\" is not a duration (such as 45s, 30m, 6h, 1d or 1h30m)%s",
                        args->pos[0], r == -ERANGE ? ": too long" : "");
        until = now_usec();
        if (d > UINT64_MAX - until)
                return cli_usage_error("postpone: \"%s\" is too long", args->pos[0]);
        until += d;

        r = client_connect(&bus);
        if (r != 0)
                return r;
        r = client_call(bus, "Postpone", &error, NULL, "t", until);
        if (r < 0)
                return client_report(NULL, r, &error);
        printf("no automatic install before %s\n", format_timestamp(when, sizeof(when), until));
        return EXIT_OK;
}

int auto_update_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        bool enable = streq(argv[0], "enable");
        int r;

        r = cli_parse_verb(argc, argv, 0, 0, 0, args);
        if (r != 0)
                return r;
        r = client_connect(&bus);
        if (r != 0)
                return r;
        r = client_call(bus, "SetAutoUpdate", &error, NULL, "b", (int)enable);
        if (r < 0)
                return client_report(NULL, r, &error);
        printf("automatic updates %s\n", enable ? "on" : "off");
        return EXIT_OK;
}
