/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The io.upkeep.Update1 object (upkeep-dbus(7)): one vtable, the method handlers, errors as replies. */
#include <stdarg.h>
#include <stddef.h>

#include "boot.h"
#include "bus.h"
#include "install.h"
#include "logging.h"
#include "path-util.h"
#include "polkit.h"
#include "support.h"

#define BUS_EMIT_MAX 16

int bus_error_set_upk(sd_bus_error *error, const UpkErr *e)
{
        (void)sd_bus_error_set(error, upk_bus_error_name(e),
                               e->msg[0] ? e->msg : strerror(e->code ? -e->code : EIO));
        return e->code < 0 ? e->code : -EIO;
}

void bus_emit_changed(Manager *m, const char *property, ...)
{
        char *names[BUS_EMIT_MAX + 1];
        size_t n = 0;
        va_list ap;

        if (!m->bus)
                return;
        va_start(ap, property);
        for (const char *p = property; p && n < BUS_EMIT_MAX; p = va_arg(ap, const char *))
                names[n++] = (char *)p;
        va_end(ap);
        names[n] = NULL;
        (void)sd_bus_emit_properties_changed_strv(m->bus, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE, names);
}

/* A broadcast every local user may receive: without the paths of root's files, as LastError. */
void bus_emit_finished(Manager *m, bool ok, const char *message, const char *error_name)
{
        _cleanup_free_ char *redacted = path_redact(message);

        if (m->bus)
                (void)sd_bus_emit_signal(m->bus, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE, "Finished", "bss",
                                         (int)ok, redacted ?: "(out of memory)", error_name);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", manager_state_to_string(m->state));
}

static int property_get_progress(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        Manager *m = userdata;
        return sd_bus_message_append(reply, "(tt)", m->progress_done, m->progress_total);
}

static int property_get_last_delta(sd_bus *bus, const char *path, const char *interface,
                                   const char *property, sd_bus_message *reply, void *userdata,
                                   sd_bus_error *error)
{
        Manager *m = userdata;
        return sd_bus_message_append(reply, "(tttu)", m->delta_reused, m->delta_total, m->delta_downloaded,
                                     m->delta_requests);
}

static int property_get_rolled_back(sd_bus *bus, const char *path, const char *interface,
                                    const char *property, sd_bus_message *reply, void *userdata,
                                    sd_bus_error *error)
{
        Manager *m = userdata;
        return sd_bus_message_append(reply, "(ssst)", m->rb_version, m->rb_slot, m->rb_reason, m->rb_time);
}

/* ---- acting methods: the body runs once polkit_authorize() let the caller through ---- */

/* Answered when the check ends (manager.c); 1 tells sd-bus the call is taken care of. */
static int do_check(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        int r = manager_check(m, msg, error);
        return r < 0 ? r : 1;
}

static int do_install(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        const char *source, *key;
        int allow_downgrade = false, fd = -EBADF, r;

        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "s", &source);
        if (r >= 0)
                r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "allow-downgrade")) {
                        r = sd_bus_message_read(msg, "v", "b", &allow_downgrade);
                        if (r < 0)
                                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                        "the option \"allow-downgrade\" takes a boolean");
                } else if (streq(key, "fd")) {
                        r = sd_bus_message_read(msg, "v", "h", &fd);
                        if (r < 0)
                                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                        "the option \"fd\" takes a file descriptor");
                } else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "unknown option \"%s\"",
                                                 key);
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = manager_install(m, source, fd, allow_downgrade, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

/* Cancel of a pending update is answered when its job ends (manager.c). */
static int do_cancel(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        int r = manager_cancel(m, msg, error);
        return r != 0 ? r : sd_bus_reply_method_return(msg, NULL);
}

/* Rollback and MarkGood are answered when their job ends (manager.c). */
static int do_rollback(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        int r = manager_rollback(m, msg, error);
        return r < 0 ? r : 1;
}

static int do_mark_good(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        int r = manager_mark_good(m, msg, error);
        return r < 0 ? r : 1;
}

static int do_postpone(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        uint64_t until;
        int r;

        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "t", &until);
        if (r >= 0)
                r = manager_postpone(m, until, error);
        return r < 0 ? r : sd_bus_reply_method_return(msg, NULL);
}

static int do_set_auto_update(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        int enable, r;

        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "b", &enable);
        if (r >= 0)
                r = manager_set_auto_update(m, enable, error);
        return r < 0 ? r : sd_bus_reply_method_return(msg, NULL);
}

static int do_decline(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        const char *reason;
        int r;

        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "s", &reason);
        if (r < 0)
                return r;
        if (strlen(reason) > DECLINE_REASON_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "the reason is longer than %u bytes", DECLINE_REASON_MAX);
        r = manager_consent(m, false, reason, error);
        return r < 0 ? r : sd_bus_reply_method_return(msg, NULL);
}

static int do_acknowledge_rollback(sd_bus_message *msg, Manager *m, sd_bus_error *error)
{
        _cleanup_free_ char *version = NULL;
        int r = manager_acknowledge_rollback(m, &version, error);
        return r < 0 ? r : sd_bus_reply_method_return(msg, "s", version);
}

#define ACTING_METHOD(name, body)                                                 \
        static int name(sd_bus_message *msg, void *userdata, sd_bus_error *error) \
        {                                                                         \
                return polkit_authorize(msg, userdata, body, error);              \
        }
ACTING_METHOD(method_check, do_check)
ACTING_METHOD(method_install, do_install)
ACTING_METHOD(method_cancel, do_cancel)
ACTING_METHOD(method_rollback, do_rollback)
ACTING_METHOD(method_mark_good, do_mark_good)
ACTING_METHOD(method_postpone, do_postpone)
ACTING_METHOD(method_set_auto_update, do_set_auto_update)
ACTING_METHOD(method_acknowledge_rollback, do_acknowledge_rollback)
ACTING_METHOD(method_decline, do_decline)

/* ---- reading methods: anyone ---- */

/* Root reads the whole history; every other caller reads the reasons without the paths of root's files
 * (path_redact()). */
static int method_get_history(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *warning = NULL;
        Manager *m = userdata;
        HistoryEntry *h = NULL;
        bool redact = !polkit_caller_is_root(msg);
        size_t n = 0;
        int r;

        r = history_load(m->config->data_dir, &h, &n, &warning);
        if (warning)
                log_msg(LOG_LEVEL_WARNING, "%s", warning);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "cannot read the history in %s: %m",
                                               m->config->data_dir);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(tsssbs)");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *reason = redact ? path_redact(h[i].reason ?: "") : NULL, *named = NULL;
                const char *shown = redact ? reason : h[i].reason ?: "";

                /* An install for an update server's action names it first, for the operator. */
                if (shown && h[i].action)
                        shown = named = strdup_printf("hawkBit action %s%s%s", h[i].action,
                                                      shown[0] ? ": " : "", shown);
                if (!shown)
                        r = -ENOMEM;
                else
                        r = sd_bus_message_append(reply, "(tsssbs)", h[i].time, h[i].operation ?: "",
                                                  h[i].version ?: "", h[i].slot ?: "", (int)h[i].ok, shown);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        history_free(h, n);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Answered when the boot backend was read, in a worker (manager.c: bus_reply_slots()). */
static int method_get_slots(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        int r = manager_get_slots(userdata, msg, error);
        return r < 0 ? r : 1;
}

int bus_reply_slots(Manager *m, sd_bus_message *call, const SlotState *states, size_t n_states)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        const Config *c = m->config;
        int r;

        if (state_load(c->data_dir, &s, NULL) < 0)
                s = NULL;
        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssssss)");
        for (size_t i = 0; r >= 0 && i < c->n_slots; i++) {
                const SlotConfig *sc = &c->slots[i];
                const char *version = s ? state_slot_version(s, sc->bootname) : NULL;
                SlotState st = i < n_states ? states[i] : _SLOT_STATE_INVALID;

                r = sd_bus_message_append(reply, "(ssssss)", sc->class, sc->name, sc->bootname, sc->device,
                                          slot_state_to_string(st) ?: "unknown", version ?: "");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_capability(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *warning = NULL;
        Manager *m = userdata;
        HistoryEntry *h = NULL;
        Capability cap = {};
        size_t n = 0;
        int r;

        if (state_load(m->config->data_dir, &s, NULL) < 0)
                s = NULL;
        if (history_load(m->config->data_dir, &h, &n, &warning) < 0)
                h = NULL, n = 0;
        r = support_capability(m->config, s, h, n, support_today(), &cap);
        history_free(h, n);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}", "can-receive-updates", "b",
                                          (int)cap.can_receive_updates, "update-mode", "s", cap.update_mode,
                                          "support-end", "s", cap.support_end, "support-source", "s",
                                          support_source_to_string(cap.support_source));
        if (r >= 0 && cap.has_days_left)
                r = sd_bus_message_append(reply, "{sv}", "support-days-left", "x", cap.support_days_left);
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}{sv}", "verification", "s",
                                          cap.verification, "update-source", "s", cap.update_source,
                                          "last-check", "t", cap.last_check, "current-version", "s",
                                          m->current_version ?: "", "compatible", "s", m->compatible ?: "");
        if (r >= 0 && cap.has_last_install)
                r = sd_bus_message_append(reply, "{sv}{sv}{sv}", "last-install-version", "s",
                                          cap.last_install_version, "last-install-time", "t",
                                          cap.last_install_time, "last-install-ok", "b",
                                          (int)cap.last_install_ok);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        capability_done(&cap);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Every method is UNPRIVILEGED for sd-bus: the acting ones check the caller themselves (polkit.c). */
static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),

        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "(tt)", property_get_progress, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Phase", "s", NULL, offsetof(Manager, phase), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CurrentVersion", "s", NULL, offsetof(Manager, current_version),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AvailableVersion", "s", NULL, offsetof(Manager, available_version),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Compatible", "s", NULL, offsetof(Manager, compatible),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("BootedSlot", "s", NULL, offsetof(Manager, booted_slot),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastCheck", "t", NULL, offsetof(Manager, last_check),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", NULL, offsetof(Manager, last_error),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AutoUpdate", "b", NULL, offsetof(Manager, auto_update),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SupportEnd", "s", NULL, offsetof(Manager, support_end),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ConsentNeeded", "b", NULL, offsetof(Manager, consent_needed),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastDelta", "(tttu)", property_get_last_delta, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RolledBack", "(ssst)", property_get_rolled_back, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),

        SD_BUS_METHOD_WITH_ARGS("Check", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", available), method_check,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Install", SD_BUS_ARGS("s", source, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_install, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Rollback", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", slot), method_rollback,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MarkGood", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_mark_good,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Postpone", SD_BUS_ARGS("t", until), SD_BUS_NO_RESULT, method_postpone,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetAutoUpdate", SD_BUS_ARGS("b", enable), SD_BUS_NO_RESULT,
                                method_set_auto_update, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AcknowledgeRollback", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", version),
                                method_acknowledge_rollback, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Decline", SD_BUS_ARGS("s", reason), SD_BUS_NO_RESULT, method_decline,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetHistory", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(tsssbs)", entries),
                                method_get_history, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetSlots", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssssss)", slots),
                                method_get_slots, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetCapability", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", capability),
                                method_get_capability, SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_SIGNAL_WITH_ARGS("Finished", SD_BUS_ARGS("b", ok, "s", message, "s", error), 0),

        SD_BUS_VTABLE_END,
};

int bus_add_object(Manager *m)
{
        return sd_bus_add_object_vtable(m->bus, NULL, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE, manager_vtable,
                                        m);
}
