/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client side of io.upkeep.Update1: connection, error reporting, properties. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"
#include "format.h"

void update_props_done(UpdateProps *p)
{
        free(p->state);
        free(p->phase);
        free(p->current_version);
        free(p->available_version);
        free(p->compatible);
        free(p->booted_slot);
        free(p->last_error);
        free(p->support_end);
        free(p->rb_version);
        free(p->rb_slot);
        free(p->rb_reason);
        *p = (UpdateProps){};
}

int client_connect(sd_bus **ret)
{
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "%s: cannot connect to the system bus: %s\n", program_name, strerror(-r));
                return EXIT_FAIL;
        }
        /* Let polkit ask the user when it is configured to. */
        (void)sd_bus_set_allow_interactive_authorization(bus, true);
        *ret = bus;
        return 0;
}

int client_call(sd_bus *bus, const char *member, sd_bus_error *error, sd_bus_message **ret_reply,
                const char *types, ...)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, UPKEEP_BUS_NAME, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE,
                                           member);
        if (r < 0)
                return r;
        if (!isempty(types)) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }
        return sd_bus_call(bus, m, 0, error, ret_reply);
}

int client_report(const char *what, int r, const sd_bus_error *error)
{
        const char *sep = what ? ": " : "";

        what = what ?: "";
        if (error && sd_bus_error_is_set(error)) {
                int status = upk_bus_error_exit_status(error->name);

                if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                           SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        fprintf(stderr,
                                "%s: %s%sthe update daemon is not running (nothing owns %s on the system "
                                "bus)\n",
                                program_name, what, sep, UPKEEP_BUS_NAME);
                else if (status == EXIT_ACCESS)
                        fprintf(stderr, "%s: %s%spermission denied: %s\n", program_name, what, sep,
                                error->message ?: error->name);
                else
                        fprintf(stderr, "%s: %s%s%s\n", program_name, what, sep,
                                error->message ?: error->name);
                return status;
        }
        if (r == -EACCES || r == -EPERM) {
                fprintf(stderr, "%s: %s%spermission denied: %s\n", program_name, what, sep, strerror(-r));
                return EXIT_ACCESS;
        }
        if (r == -EBADMSG || r == -ENXIO || r == -E2BIG)
                fprintf(stderr, "%s: %s%sthe daemon sent an unexpected reply (%s)\n", program_name, what,
                        sep, strerror(-r));
        else
                fprintf(stderr, "%s: %s%s%s\n", program_name, what, sep, strerror(-r));
        return EXIT_FAIL;
}

int bus_read_string(sd_bus_message *m, const char **ret)
{
        const char *s;
        int r;

        r = sd_bus_message_read_basic(m, 's', &s);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;
        if (strlen(s) > CLIENT_STRING_MAX)
                return -E2BIG;
        *ret = s;
        return 0;
}

static int set_string(char **field, sd_bus_message *m)
{
        const char *s;
        char *copy;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "s");
        if (r < 0)
                return r;
        r = bus_read_string(m, &s);
        if (r < 0)
                return r;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return sd_bus_message_exit_container(m);
}

static int set_u64(uint64_t *field, sd_bus_message *m)
{
        int r;

        r = sd_bus_message_enter_container(m, 'v', "t");
        if (r < 0)
                return r;
        r = sd_bus_message_read_basic(m, 't', field);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int set_bool(bool *field, sd_bus_message *m)
{
        int b, r;

        r = sd_bus_message_enter_container(m, 'v', "b");
        if (r < 0)
                return r;
        r = sd_bus_message_read_basic(m, 'b', &b);
        if (r < 0)
                return r;
        *field = b;
        return sd_bus_message_exit_container(m);
}

static int set_progress(UpdateProps *p, sd_bus_message *m)
{
        uint64_t done, total;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "(tt)");
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "(tt)", &done, &total);
        if (r < 0)
                return r;
        p->progress_done = done;
        p->progress_total = total;
        return sd_bus_message_exit_container(m);
}

static int set_rolled_back(UpdateProps *p, sd_bus_message *m)
{
        const char *s[3];
        char *copy[3] = {};
        uint64_t time;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "(ssst)");
        if (r >= 0)
                r = sd_bus_message_enter_container(m, 'r', "ssst");
        for (size_t i = 0; r >= 0 && i < 3; i++)
                r = bus_read_string(m, &s[i]);
        if (r >= 0)
                r = sd_bus_message_read_basic(m, 't', &time);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 3; i++)
                if (!(copy[i] = strdup(s[i]))) {
                        for (size_t k = 0; k < i; k++)
                                free(copy[k]);
                        return -ENOMEM;
                }
        free(p->rb_version);
        free(p->rb_slot);
        free(p->rb_reason);
        p->rb_version = copy[0];
        p->rb_slot = copy[1];
        p->rb_reason = copy[2];
        p->rb_time = time;
        return sd_bus_message_exit_container(m);
}

static int set_last_delta(UpdateProps *p, sd_bus_message *m)
{
        int r;

        r = sd_bus_message_enter_container(m, 'v', "(tttu)");
        if (r >= 0)
                r = sd_bus_message_read(m, "(tttu)", &p->delta_reused, &p->delta_total, &p->delta_downloaded,
                                        &p->delta_requests);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

#define PROPERTY_NAMES_MAX 64

int update_props_apply(UpdateProps *props, sd_bus_message *m, char ***ret_changed)
{
        _cleanup_(strv_freep) char **changed = NULL;
        size_t n = 0;
        int r;

        if (ret_changed) {
                changed = calloc(PROPERTY_NAMES_MAX + 1, sizeof(char *));
                if (!changed)
                        return -ENOMEM;
        }
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name;

                r = sd_bus_message_read_basic(m, 's', &name);
                if (r < 0)
                        return r;
                if (streq(name, "State"))
                        r = set_string(&props->state, m);
                else if (streq(name, "Phase"))
                        r = set_string(&props->phase, m);
                else if (streq(name, "CurrentVersion"))
                        r = set_string(&props->current_version, m);
                else if (streq(name, "AvailableVersion"))
                        r = set_string(&props->available_version, m);
                else if (streq(name, "Compatible"))
                        r = set_string(&props->compatible, m);
                else if (streq(name, "BootedSlot"))
                        r = set_string(&props->booted_slot, m);
                else if (streq(name, "LastError"))
                        r = set_string(&props->last_error, m);
                else if (streq(name, "SupportEnd"))
                        r = set_string(&props->support_end, m);
                else if (streq(name, "Progress"))
                        r = set_progress(props, m);
                else if (streq(name, "LastCheck"))
                        r = set_u64(&props->last_check, m);
                else if (streq(name, "AutoUpdate"))
                        r = set_bool(&props->auto_update, m);
                else if (streq(name, "RolledBack"))
                        r = set_rolled_back(props, m);
                else if (streq(name, "LastDelta"))
                        r = set_last_delta(props, m);
                else {
                        r = sd_bus_message_skip(m, "v");
                        name = NULL;
                }
                if (r < 0)
                        return r;
                if (changed && name && n < PROPERTY_NAMES_MAX) {
                        changed[n] = strdup(name);
                        if (!changed[n])
                                return -ENOMEM;
                        n++;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        if (ret_changed)
                *ret_changed = TAKE_PTR(changed);
        return 0;
}

int client_get_props(sd_bus *bus, UpdateProps *props, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, UPKEEP_BUS_NAME, UPKEEP_BUS_PATH, "org.freedesktop.DBus.Properties",
                               "GetAll", error, &reply, "s", UPKEEP_BUS_INTERFACE);
        if (r < 0)
                return r;
        return update_props_apply(props, reply, NULL);
}

char *update_props_describe(const UpdateProps *p, const char *name)
{
        char when[FORMAT_WHEN_MAX];

        if (streq(name, "State"))
                return strdup(p->state ?: "");
        if (streq(name, "Phase"))
                return strdup(p->phase ?: "");
        if (streq(name, "CurrentVersion"))
                return strdup(p->current_version ?: "");
        if (streq(name, "AvailableVersion"))
                return strdup(p->available_version ?: "");
        if (streq(name, "Compatible"))
                return strdup(p->compatible ?: "");
        if (streq(name, "BootedSlot"))
                return strdup(p->booted_slot ?: "");
        if (streq(name, "LastError"))
                return strdup(p->last_error ?: "");
        if (streq(name, "SupportEnd"))
                return strdup(p->support_end ?: "");
        if (streq(name, "Progress"))
                return strdup_printf("%" PRIu64 "/%" PRIu64, p->progress_done, p->progress_total);
        if (streq(name, "LastCheck"))
                return strdup(format_when(when, sizeof(when), p->last_check));
        if (streq(name, "AutoUpdate"))
                return strdup(p->auto_update ? "yes" : "no");
        if (streq(name, "LastDelta"))
                return p->delta_total == 0
                               ? strdup("")
                               : strdup_printf("%" PRIu64 " of %" PRIu64 " bytes reused, %" PRIu64
                                               " downloaded in %" PRIu32 " requests",
                                               p->delta_reused, p->delta_total, p->delta_downloaded,
                                               p->delta_requests);
        if (streq(name, "RolledBack"))
                return isempty(p->rb_slot)
                               ? strdup("")
                               : strdup_printf("version %s on slot %s: %s",
                                               isempty(p->rb_version) ? "(unknown)" : p->rb_version,
                                               p->rb_slot, p->rb_reason ?: "");
        return NULL;
}

int bus_variant_to_json(sd_bus_message *m, json_object **ret)
{
        const char *contents;
        char type;
        json_object *o = NULL;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0 || type != 'v' || strlen(contents) != 1 || !strchr("bsxtiud", contents[0]))
                return -EBADMSG; /* checked before entering: the caller may skip the variant */
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        switch (contents[0]) {
        case 'b': {
                int b;
                r = sd_bus_message_read_basic(m, 'b', &b);
                if (r >= 0)
                        o = json_object_new_boolean(b);
                break;
        }
        case 's': {
                const char *s;
                r = bus_read_string(m, &s);
                if (r >= 0)
                        o = json_object_new_string(s);
                break;
        }
        case 'x': {
                int64_t x;
                r = sd_bus_message_read_basic(m, 'x', &x);
                if (r >= 0)
                        o = json_object_new_int64(x);
                break;
        }
        case 't': {
                uint64_t t;
                r = sd_bus_message_read_basic(m, 't', &t);
                if (r >= 0)
                        o = json_object_new_uint64(t);
                break;
        }
        case 'i': {
                int32_t i;
                r = sd_bus_message_read_basic(m, 'i', &i);
                if (r >= 0)
                        o = json_object_new_int64(i);
                break;
        }
        case 'u': {
                uint32_t u;
                r = sd_bus_message_read_basic(m, 'u', &u);
                if (r >= 0)
                        o = json_object_new_int64(u);
                break;
        }
        case 'd': {
                double d;
                r = sd_bus_message_read_basic(m, 'd', &d);
                if (r >= 0)
                        o = json_object_new_double(d);
                break;
        }
        default:
                return -EBADMSG;
        }
        if (r < 0)
                return r;
        if (!o)
                return -ENOMEM;
        r = sd_bus_message_exit_container(m);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

int cli_print_json(json_object *o)
{
        if (puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 ||
            fflush(stdout) != 0) {
                fprintf(stderr, "%s: cannot write to standard output: %s\n", program_name, strerror(errno));
                return EXIT_FAIL;
        }
        return EXIT_OK;
}

char *format_when(char *buf, size_t size, uint64_t usec)
{
        char ts[FORMAT_TIMESTAMP_MAX], span[FORMAT_TIMESPAN_MAX];
        uint64_t now = now_usec();

        if (usec == 0)
                snprintf(buf, size, "never");
        else if (usec <= now)
                snprintf(buf, size, "%s (%s ago)", format_timestamp(ts, sizeof(ts), usec),
                         format_timespan(span, sizeof(span), now - usec));
        else
                snprintf(buf, size, "%s (in %s)", format_timestamp(ts, sizeof(ts), usec),
                         format_timespan(span, sizeof(span), usec - now));
        return buf;
}
