/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* updatectl history | slots | support: the read-only queries, as tables or JSON. */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "format.h"

/* A table of strings, printed with columns as wide as their widest cell. */
#define TABLE_COLUMNS_MAX 8

typedef struct Table {
        size_t n_columns, n_rows;
        char **cells; /* n_rows * n_columns, row 0 the header */
} Table;

static void table_done(Table *t)
{
        for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
                free(t->cells[i]);
        free(t->cells);
        *t = (Table){};
}

/* Append a row of n_columns strings (copied). */
static int table_add(Table *t, const char *const *row)
{
        char **cells = reallocarray(t->cells, (t->n_rows + 1) * t->n_columns, sizeof(char *));

        if (!cells)
                return -ENOMEM;
        t->cells = cells;
        for (size_t c = 0; c < t->n_columns; c++) {
                cells[t->n_rows * t->n_columns + c] = strdup(row[c] ?: "");
                if (!cells[t->n_rows * t->n_columns + c]) {
                        for (size_t k = 0; k < c; k++)
                                free(cells[t->n_rows * t->n_columns + k]);
                        return -ENOMEM;
                }
        }
        t->n_rows++;
        return 0;
}

static void table_print(const Table *t)
{
        size_t width[TABLE_COLUMNS_MAX] = {};

        for (size_t r = 0; r < t->n_rows; r++)
                for (size_t c = 0; c < t->n_columns; c++) {
                        size_t l = strlen(t->cells[r * t->n_columns + c]);
                        if (l > width[c])
                                width[c] = l;
                }
        for (size_t r = 0; r < t->n_rows; r++) {
                size_t last = t->n_columns - 1;

                /* No trailing blanks: the last non-empty cell ends the line. */
                while (last > 0 && !t->cells[r * t->n_columns + last][0])
                        last--;
                for (size_t c = 0; c <= last; c++)
                        printf("%-*s%s", c == last ? 0 : (int)width[c], t->cells[r * t->n_columns + c],
                               c == last ? "\n" : "  ");
        }
}

static int json_add_string(json_object *o, const char *key, const char *value)
{
        json_object *s = json_object_new_string(value);

        if (!s || json_object_object_add(o, key, s) < 0) {
                json_object_put(s);
                return -ENOMEM;
        }
        return 0;
}

/* The common start of history, slots and support: the options (--json only), the bus, one call without
 * arguments. 0 with the reply, or the exit status to return. */
static int fetch_reply(int argc, char *argv[], CliArgs *args, const char *method, sd_bus **ret_bus,
                       sd_bus_message **ret_reply)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = cli_parse_verb(argc, argv, CLI_OPT_JSON, 0, 0, args);
        if (r != 0)
                return r;
        r = client_connect(ret_bus);
        if (r != 0)
                return r;
        r = client_call(*ret_bus, method, &error, ret_reply, NULL);
        if (r < 0)
                return client_report(NULL, r, &error);
        return 0;
}

int history_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *array = NULL;
        _cleanup_(table_done) Table t = { .n_columns = 6 };
        static const char *const header[] = { "TIME", "OPERATION", "VERSION", "SLOT", "RESULT", "REASON" };
        size_t n = 0;
        int r;

        r = fetch_reply(argc, argv, args, "GetHistory", &bus, &reply);
        if (r != 0)
                return r;

        array = json_object_new_array();
        if (!array || table_add(&t, header) < 0)
                return client_report(NULL, -ENOMEM, NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(tsssbs)");
        if (r < 0)
                return client_report("history", r, NULL);
        for (;;) {
                const char *op, *version, *slot, *reason;
                char when[FORMAT_TIMESTAMP_MAX];
                uint64_t time;
                int ok;

                r = sd_bus_message_read(reply, "(tsssbs)", &time, &op, &version, &slot, &ok, &reason);
                if (r < 0)
                        return client_report("history", r, NULL);
                if (r == 0)
                        break;
                if (++n > CLIENT_ENTRIES_MAX)
                        return client_report("history", -E2BIG, NULL);
                if (args->json) {
                        json_object *e = json_object_new_object();
                        if (!e || json_object_array_add(array, e) < 0) {
                                json_object_put(e);
                                return client_report(NULL, -ENOMEM, NULL);
                        }
                        if (json_object_object_add(e, "time", json_object_new_uint64(time)) < 0 ||
                            json_add_string(e, "operation", op) < 0 ||
                            json_add_string(e, "version", version) < 0 ||
                            json_add_string(e, "slot", slot) < 0 ||
                            json_object_object_add(e, "ok", json_object_new_boolean(ok)) < 0 ||
                            json_add_string(e, "reason", reason) < 0)
                                return client_report(NULL, -ENOMEM, NULL);
                } else {
                        const char *row[] = { format_timestamp(when, sizeof(when), time),
                                              op,
                                              version,
                                              slot,
                                              ok ? "ok" : "failed",
                                              reason };
                        if (table_add(&t, row) < 0)
                                return client_report(NULL, -ENOMEM, NULL);
                }
        }

        if (args->json)
                return cli_print_json(array);
        if (n == 0)
                printf("no history\n");
        else
                table_print(&t);
        return EXIT_OK;
}

int slots_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *array = NULL;
        _cleanup_(table_done) Table t = { .n_columns = 7 };
        _cleanup_free_ char *booted = NULL;
        static const char *const header[] = { "CLASS", "NAME",    "BOOTNAME", "DEVICE",
                                              "STATE", "VERSION", "BOOTED" };
        size_t n = 0;
        int r;

        r = fetch_reply(argc, argv, args, "GetSlots", &bus, &reply);
        if (r != 0)
                return r;
        r = sd_bus_get_property_string(bus, UPKEEP_BUS_NAME, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE,
                                       "BootedSlot", &error, &booted);
        if (r < 0)
                return client_report(NULL, r, &error);

        array = json_object_new_array();
        if (!array || table_add(&t, header) < 0)
                return client_report(NULL, -ENOMEM, NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(ssssss)");
        if (r < 0)
                return client_report("slots", r, NULL);
        for (;;) {
                const char *class, *name, *bootname, *device, *state, *version;
                bool is_booted;

                r = sd_bus_message_read(reply, "(ssssss)", &class, &name, &bootname, &device, &state,
                                        &version);
                if (r < 0)
                        return client_report("slots", r, NULL);
                if (r == 0)
                        break;
                if (++n > CLIENT_ENTRIES_MAX)
                        return client_report("slots", -E2BIG, NULL);
                is_booted = !isempty(booted) && streq(bootname, booted);
                if (args->json) {
                        json_object *e = json_object_new_object();
                        if (!e || json_object_array_add(array, e) < 0) {
                                json_object_put(e);
                                return client_report(NULL, -ENOMEM, NULL);
                        }
                        if (json_add_string(e, "class", class) < 0 || json_add_string(e, "name", name) < 0 ||
                            json_add_string(e, "bootname", bootname) < 0 ||
                            json_add_string(e, "device", device) < 0 ||
                            json_add_string(e, "state", state) < 0 ||
                            json_add_string(e, "version", version) < 0 ||
                            json_object_object_add(e, "booted", json_object_new_boolean(is_booted)) < 0)
                                return client_report(NULL, -ENOMEM, NULL);
                } else {
                        const char *row[] = { class,
                                              name,
                                              bootname,
                                              device,
                                              state,
                                              isempty(version) ? "-" : version,
                                              is_booted ? "yes" : "" };
                        if (table_add(&t, row) < 0)
                                return client_report(NULL, -ENOMEM, NULL);
                }
        }

        if (args->json)
                return cli_print_json(array);
        if (n == 0)
                printf("no slots configured\n");
        else
                table_print(&t);
        return EXIT_OK;
}

/* The value of `key` in `o` as a string, a boolean, an integer; defaults when absent or of another type. */
static const char *get_str(json_object *o, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool get_bool(json_object *o, const char *key, bool *ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
                return false;
        *ret = json_object_get_boolean(v);
        return true;
}

static bool get_int(json_object *o, const char *key, int64_t *ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_int64(v);
        return true;
}

static bool get_uint(json_object *o, const char *key, uint64_t *ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_uint64(v);
        return true;
}

static void support_print(json_object *o)
{
        const char *end = get_str(o, "support-end"), *source = get_str(o, "support-source"),
                   *mode = get_str(o, "update-mode"), *version = get_str(o, "last-install-version");
        char buf[FORMAT_WHEN_MAX + 128], when[FORMAT_WHEN_MAX];
        bool can = false, has_days, ok = false;
        uint64_t last_check = 0, install_time = 0;
        int64_t days = 0;

        (void)get_bool(o, "can-receive-updates", &can);
        has_days = get_int(o, "support-days-left", &days);
        (void)get_uint(o, "last-check", &last_check);
        (void)get_uint(o, "last-install-time", &install_time);
        (void)get_bool(o, "last-install-ok", &ok);

        if (can)
                snprintf(buf, sizeof(buf), "yes");
        else if (has_days && days < 0)
                snprintf(buf, sizeof(buf), "NO: security support has ended");
        else
                snprintf(buf, sizeof(buf), "NO");
        printf("%17s: %s\n", "Security updates", buf);
        printf("%17s: %s\n", "Update mode", mode ?: "unknown");

        if (isempty(end))
                snprintf(buf, sizeof(buf), "unknown");
        else if (!has_days)
                snprintf(buf, sizeof(buf), "%s", end);
        else if (days >= 0)
                snprintf(buf, sizeof(buf), "%s (%" PRIi64 " day%s left)", end, days, days == 1 ? "" : "s");
        else
                snprintf(buf, sizeof(buf), "%s (ended %" PRIi64 " day%s ago)", end, -days,
                         days == -1 ? "" : "s");
        printf("%17s: %s\n", "Support end", buf);
        if (source && streq(source, "manifest"))
                printf("%17s: %s\n", "Support end from", "the newest installed update's manifest");
        else if (source && streq(source, "config"))
                printf("%17s: %s\n", "Support end from", "the configuration ([policy] support-end)");

        printf("%17s: %s\n", "Verification", get_str(o, "verification") ?: "unknown");
        printf("%17s: %s\n", "Update source", get_str(o, "update-source") ?: "unknown");
        printf("%17s: %s\n", "Last check", format_when(when, sizeof(when), last_check));
        if (install_time > 0) {
                if (isempty(version))
                        snprintf(buf, sizeof(buf), "%s", ok ? "succeeded" : "failed");
                else
                        snprintf(buf, sizeof(buf), "version %s, %s", version, ok ? "succeeded" : "failed");
                printf("%17s: %s %s\n", "Last install", format_when(when, sizeof(when), install_time), buf);
        } else
                printf("%17s: %s\n", "Last install", "none");
        printf("%17s: %s\n", "Current version", get_str(o, "current-version") ?: "unknown");
        printf("%17s: %s\n", "Compatible", get_str(o, "compatible") ?: "unknown");
        if (has_days && days < 0)
                printf("WARNING: security support for this device ended on %s: it receives no more security "
                       "updates.\n",
                       end ?: "?");
}

int support_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        int r;

        r = fetch_reply(argc, argv, args, "GetCapability", &bus, &reply);
        if (r != 0)
                return r;

        o = json_object_new_object();
        if (!o)
                return client_report(NULL, -ENOMEM, NULL);
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return client_report("support", r, NULL);
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;
                json_object *v = NULL;

                r = bus_read_string(reply, &key);
                if (r >= 0)
                        r = bus_variant_to_json(reply, &v);
                if (r == -EBADMSG)
                        r = sd_bus_message_skip(reply, "v"); /* a type this client does not know */
                else if (r >= 0 && json_object_object_add(o, key, v) < 0) {
                        json_object_put(v);
                        r = -ENOMEM;
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return client_report("support", r, NULL);
        }
        if (r < 0)
                return client_report("support", r, NULL);

        if (args->json)
                return cli_print_json(o);
        support_print(o);
        return EXIT_OK;
}
