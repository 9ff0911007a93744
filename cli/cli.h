/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#if HAVE_DAEMON
#include <systemd/sd-bus.h> /* the host tool (-Ddaemon=false) has no libsystemd and no daemon commands */
#endif

#include "bus-api.h"
#include "json-util.h"
#include "strv.h"

/* Exit status: UPK_EXIT_* from bus-api.h, documented in updatectl(1). */
#define EXIT_OK     UPK_EXIT_OK
#define EXIT_FAIL   UPK_EXIT_FAIL
#define EXIT_USAGE  UPK_EXIT_USAGE
#define EXIT_ACCESS UPK_EXIT_ACCESS_DENIED

/* Longest string property or reply field the client accepts from the bus (the daemon's messages are
 * UpkErr sentences of at most UPK_ERR_MSG_MAX; versions, paths and names are shorter). */
#define CLIENT_STRING_MAX 4096
/* Most history entries and slots the client reads from one reply. */
#define CLIENT_ENTRIES_MAX 100000

extern const char *program_name;

/* Print "NAME: what: message" for an UpkErr and return the exit status for its kind. */
int cli_report(const char *what, const UpkErr *e);
/* Print "NAME: message" for a usage error and return EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) _printf_(1, 2);

/* The options of the daemon commands. The global ones (before the verb) seed them; each verb accepts
 * only the options that apply to it. */
typedef enum CliOption {
        CLI_OPT_JSON = 1 << 0,
        CLI_OPT_NO_BLOCK = 1 << 1,
        CLI_OPT_ALLOW_DOWNGRADE = 1 << 2,
} CliOption;

#define CLI_POS_MAX 2

typedef struct CliArgs {
        unsigned given; /* CliOption bits given on the command line */
        bool json, no_block, allow_downgrade;
        char *pos[CLI_POS_MAX]; /* positional arguments after the verb */
        int n_pos;
} CliArgs;

/* Parse a verb's options (argv[0] is the verb) into `args`, refusing those not in `allowed` and more
 * than `max_pos` (at most CLI_POS_MAX) positional arguments. Returns 0 or EXIT_USAGE (after printing). */
int cli_parse_verb(int argc, char *argv[], unsigned allowed, int min_pos, int max_pos, CliArgs *args);

#if HAVE_DAEMON
/* client.c: the bus connection, errors, properties. */

typedef struct UpdateProps {
        char *state, *phase, *current_version, *available_version, *compatible, *booted_slot, *last_error,
                *support_end;
        uint64_t progress_done, progress_total, last_check;
        bool auto_update;
        /* RolledBack: version ("" unknown), slot ("" when nothing was rolled back), reason, time */
        char *rb_version, *rb_slot, *rb_reason;
        uint64_t rb_time;
        /* LastDelta: bytes taken from the booted slot, of the payloads' bytes, downloaded; requests */
        uint64_t delta_reused, delta_total, delta_downloaded;
        uint32_t delta_requests;
} UpdateProps;

void update_props_done(UpdateProps *p);

/* Connect to the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured). Returns 0 or an exit status after
 * printing why. */
int client_connect(sd_bus **ret);
/* Call a method of the daemon's interface; `types` and the arguments as sd_bus_call_method(). */
int client_call(sd_bus *bus, const char *member, sd_bus_error *error, sd_bus_message **ret_reply,
                const char *types, ...);
/* Print the error of a failed call ("NAME: what: message", as the daemon phrased it) and return the exit
 * status for it (upk_bus_error_exit_status()); no owner of the name is "the update daemon is not
 * running". `what` may be NULL. */
int client_report(const char *what, int r, const sd_bus_error *error);

/* Read every property (GetAll). */
int client_get_props(sd_bus *bus, UpdateProps *props, sd_bus_error *error);
/* Apply a{sv} of properties from `m` (positioned before the array) to `props`; unknown names are skipped.
 * If `ret_changed` is given, it gets a newly allocated, NULL-terminated list of the names applied (for
 * `monitor`). */
int update_props_apply(UpdateProps *props, sd_bus_message *m, char ***ret_changed);
/* A property's value as text, as `monitor` prints it. NULL on OOM or an unknown name. */
char *update_props_describe(const UpdateProps *props, const char *name);

/* Read one basic string of at most CLIENT_STRING_MAX bytes. */
int bus_read_string(sd_bus_message *m, const char **ret);
/* A variant of a basic type (b, s, x, t, i, u, d) from `m` as a JSON value. */
int bus_variant_to_json(sd_bus_message *m, json_object **ret);
#endif
/* Print a JSON value on stdout (pretty, no slash escapes); EXIT_OK or EXIT_FAIL. */
int cli_print_json(json_object *o);

/* µs of CLOCK_REALTIME as "2026-11-25 10:00:00 CET (3h 5m ago)", or "never" for 0. */
char *format_when(char *buf, size_t size, uint64_t usec);
#define FORMAT_WHEN_MAX 128

/* sd-bus.h brings sd_bus_flush_close_unrefp() and sd_bus_message_unrefp(); json-util.h
 * json_object_putp() and strv.h strv_freep(). */

/* The verbs. */
int bundle_main(int argc, char *argv[]);
int repo_main(int argc, char *argv[]); /* -Dtuf only */
int status_main(int argc, char *argv[], CliArgs *args);
int install_main(int argc, char *argv[], CliArgs *args);
int monitor_main(int argc, char *argv[], CliArgs *args);
int check_main(int argc, char *argv[], CliArgs *args);
int manage_main(int argc, char *argv[], CliArgs *args); /* cancel, rollback, mark-good, acknowledge */
int decline_main(int argc, char *argv[], CliArgs *args);
int postpone_main(int argc, char *argv[], CliArgs *args);
int auto_update_main(int argc, char *argv[], CliArgs *args); /* enable, disable */
int history_main(int argc, char *argv[], CliArgs *args);
int slots_main(int argc, char *argv[], CliArgs *args);
int support_main(int argc, char *argv[], CliArgs *args);
