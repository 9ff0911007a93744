/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <malloc.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include "boot.h"
#include "bus.h"
#include "logging.h"
#include "manager.h"
#include "polkit.h"
#include "reboot.h"
#include "support.h"

static const char *const manager_state_table[_MANAGER_STATE_MAX] = {
        [MANAGER_IDLE] = "idle",
        [MANAGER_CHECKING] = "checking",
        [MANAGER_DOWNLOADING] = "downloading",
        [MANAGER_INSTALLING] = "installing",
        [MANAGER_PENDING_REBOOT] = "pending-reboot",
        [MANAGER_CONFIRMING] = "confirming",
        [MANAGER_ERROR] = "error",
};

const char *manager_state_to_string(ManagerState s)
{
        return s >= 0 && s < _MANAGER_STATE_MAX ? manager_state_table[s] : NULL;
}

ManagerState manager_state_from_string(const char *s)
{
        for (int i = 0; s && i < _MANAGER_STATE_MAX; i++)
                if (streq(manager_state_table[i], s))
                        return (ManagerState)i;
        return _MANAGER_STATE_INVALID;
}

/* Replace *field with a copy of `value` (NULL: ""); true when it changed. */
static bool set_string(char **field, const char *value)
{
        char *copy;

        value = value ?: "";
        if (*field && streq(*field, value))
                return false;
        copy = strdup(value);
        if (!copy)
                return false; /* keep the old value; the next refresh tries again */
        free(*field);
        *field = copy;
        return true;
}

static void notify_status(Manager *m)
{
        if (isempty(m->phase))
                (void)sd_notifyf(false, "STATUS=%s", manager_state_to_string(m->state));
        else
                (void)sd_notifyf(false, "STATUS=%s: %s", manager_state_to_string(m->state), m->phase);
}

/* One log line per state change, with the phase. */
static void manager_set_state(Manager *m, ManagerState state)
{
        if (m->state == state)
                return;
        m->state = state;
        log_fields(LOG_LEVEL_INFO, &(LogFields){ .phase = isempty(m->phase) ? NULL : m->phase }, "state: %s",
                   manager_state_to_string(state));
        notify_status(m);
        bus_emit_changed(m, "State", NULL);
}

static void manager_set_phase(Manager *m, const char *phase)
{
        if (set_string(&m->phase, phase)) {
                notify_status(m);
                bus_emit_changed(m, "Phase", NULL);
        }
}

static void manager_set_progress(Manager *m, uint64_t done, uint64_t total)
{
        if (m->progress_done == done && m->progress_total == total)
                return;
        m->progress_done = done;
        m->progress_total = total;
        bus_emit_changed(m, "Progress", NULL);
}

static void manager_set_last_error(Manager *m, const char *msg)
{
        if (set_string(&m->last_error, msg))
                bus_emit_changed(m, "LastError", NULL);
}

static void lib_log(LogLevel level, const char *message, void *userdata)
{
        log_fields(level, NULL, "%s", message);
}

static void manager_reboot(Manager *m, const char *why)
{
        (void)reboot_system(why, m->no_reboot, lib_log, NULL);
}

void manager_refresh(Manager *m)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_free_ char *warning = NULL, *booted = NULL, *current = NULL;
        Capability cap = {};
        const char *changed[8];
        size_t n = 0;

        if (state_load(m->config->data_dir, &s, &warning) < 0)
                s = NULL;
        if (warning)
                log_msg(LOG_LEVEL_WARNING, "%s", warning);
        if (install_open_boot(m->config, &boot, NULL) >= 0)
                (void)install_find_booted(m->config, boot, &booted, NULL);
        if (s)
                (void)install_current_version(m->config, s, booted, &current, NULL);
        (void)support_capability(m->config, s, NULL, 0, support_today(), &cap);

        if (set_string(&m->booted_slot, booted))
                changed[n++] = "BootedSlot";
        if (set_string(&m->current_version, current))
                changed[n++] = "CurrentVersion";
        if (set_string(&m->support_end, cap.support_end))
                changed[n++] = "SupportEnd";
        if (s && m->auto_update != (int)s->auto_update) {
                m->auto_update = s->auto_update;
                changed[n++] = "AutoUpdate";
        }
        if (s && m->last_check != s->last_check) {
                m->last_check = s->last_check;
                changed[n++] = "LastCheck";
        }
        capability_done(&cap);
        for (size_t i = 0; i < n; i++)
                bus_emit_changed(m, changed[i], NULL);
}

/* Past the support end the journal says so at start and once a day. */
static void support_warn(Manager *m)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *msg = NULL;
        Capability cap = {};

        if (state_load(m->config->data_dir, &s, NULL) < 0)
                s = NULL;
        if (support_capability(m->config, s, NULL, 0, support_today(), &cap) < 0)
                return;
        msg = support_ended_message(&cap);
        if (msg)
                log_msg(LOG_LEVEL_WARNING, "%s", msg);
        capability_done(&cap);
}

static int on_support_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        support_warn(userdata);
        (void)sd_event_source_set_time_relative(source, SUPPORT_WARNING_INTERVAL_USEC);
        return sd_event_source_set_enabled(source, SD_EVENT_ON);
}

bool manager_busy(Manager *m)
{
        return m->job != NULL;
}

static void finish_install(Manager *m)
{
        InstallResult res = {};
        UpkErr err = {};
        bool cancelled = job_is_cancelled(m->job);
        int r;

        r = job_join(m->job, &res, NULL, &err);
        m->job = job_free(m->job);
        manager_set_progress(m, 0, 0);
        manager_set_phase(m, "");
        if (r >= 0) {
                _cleanup_free_ char *msg =
                        strdup_printf("installed version %s into slot %s", res.version, res.slot);
                log_fields(LOG_LEVEL_NOTICE,
                           &(LogFields){ .phase = "done", .version = res.version, .slot = res.slot },
                           "%s from %s; it boots once on the next reboot and must then be confirmed",
                           msg ?: "installed", m->job_source);
                manager_set_last_error(m, "");
                manager_refresh(m);
                manager_set_state(m, MANAGER_PENDING_REBOOT);
                bus_emit_finished(m, true, msg ?: "installed", "");
                if (res.reboot && !m->exiting) {
                        _cleanup_free_ char *why = strdup_printf("start version %s", res.version);
                        manager_reboot(m, why ?: "start the new version");
                }
        } else {
                _cleanup_free_ char *msg = NULL;
                const char *name;
                bool rejected = false;

                if (cancelled && r == -ECANCELED) {
                        msg = strdup("the install was cancelled; nothing was activated");
                        name = BUS_ERROR_CANCELLED;
                } else {
                        (void)upk_err_exit_status(&err, &rejected);
                        msg = strdup_printf("%s%s", rejected ? "rejected: " : "",
                                            err.msg[0] ? err.msg : strerror(-r));
                        name = bus_error_name(&err);
                }
                log_fields(LOG_LEVEL_ERROR, &(LogFields){ .phase = "failed" }, "install of %s failed: %s",
                           m->job_source, msg ?: "out of memory");
                manager_set_last_error(m, msg ?: "out of memory");
                manager_refresh(m);
                manager_set_state(m, MANAGER_ERROR);
                bus_emit_finished(m, false, msg ?: "out of memory", name);
        }
        install_result_done(&res);
        free(m->job_source);
        m->job_source = NULL;
}

static void finish_confirm(Manager *m)
{
        ConfirmResult res = {};
        UpkErr err = {};
        int r;

        r = job_join(m->job, NULL, &res, &err);
        m->job = job_free(m->job);
        manager_set_phase(m, "");
        if (r < 0) {
                log_fields(LOG_LEVEL_ERROR, &(LogFields){ .phase = "health-checks" },
                           "confirmation failed: %s", err.msg);
                manager_set_last_error(m, err.msg);
                manager_refresh(m);
                manager_set_state(m, MANAGER_ERROR);
        } else {
                LogFields f = { .phase = "health-checks", .version = res.version, .slot = res.slot };
                _cleanup_free_ char *msg = NULL;

                switch (res.outcome) {
                case CONFIRM_NOTHING_PENDING:
                        manager_refresh(m);
                        manager_set_state(m, MANAGER_IDLE);
                        break;
                case CONFIRM_GOOD:
                        log_fields(LOG_LEVEL_NOTICE, &f, "confirmed version %s on slot %s",
                                   res.version ?: "(unknown)", res.slot);
                        manager_refresh(m);
                        manager_set_state(m, MANAGER_IDLE);
                        break;
                case CONFIRM_FAILED:
                case CONFIRM_FELL_BACK:
                        msg = strdup_printf("update to version %s on slot %s failed: %s",
                                            res.version ?: "(unknown)", res.slot, res.reason ?: "");
                        log_fields(LOG_LEVEL_ERROR, &f, "%s", msg ?: "update failed");
                        manager_set_last_error(m, msg ?: "update failed");
                        manager_refresh(m);
                        manager_set_state(m, MANAGER_ERROR);
                        if (res.reboot && !m->exiting)
                                manager_reboot(m, "go back to the previous slot");
                        break;
                case _CONFIRM_OUTCOME_MAX:
                case _CONFIRM_OUTCOME_INVALID:
                        break;
                }
        }
        confirm_result_done(&res);
        (void)sd_notify(false, "READY=1");
        notify_status(m);
}

static void on_job(Job *j, void *userdata)
{
        Manager *m = userdata;
        JobSnapshot snap;

        job_snapshot(j, &snap);
        if (job_kind(j) == JOB_INSTALL && snap.phase >= 0) {
                const char *phase = install_phase_to_string(snap.phase);
                if (!streq(m->phase, phase))
                        log_fields(LOG_LEVEL_INFO, &(LogFields){ .phase = phase }, "install: %s", phase);
                manager_set_phase(m, phase);
                manager_set_progress(m, snap.done, snap.total);
        }
        if (!snap.finished)
                return;
        if (job_kind(j) == JOB_INSTALL)
                finish_install(m);
        else
                finish_confirm(m);
        /* The worker's arena and the bundle's buffers go back to the system. */
        (void)malloc_trim(0);
        if (m->exiting)
                (void)sd_event_exit(m->event, 0);
}

int manager_install(Manager *m, const char *source, bool allow_downgrade, sd_bus_error *error)
{
        int r;

        if (manager_busy(m))
                return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                         "the daemon is busy (%s); try again when it is done",
                                         manager_state_to_string(m->state));
        if (strneq(source, "http://", 7) || strneq(source, "https://", 8))
                return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                        "installing from a URL is not supported yet");
        if (source[0] != '/')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "the bundle must be given by its absolute path, not \"%s\"",
                                         source);
        free(m->job_source);
        m->job_source = strdup(source);
        if (!m->job_source)
                return -ENOMEM;
        r = job_start(m->event, m->config, JOB_INSTALL, source, allow_downgrade, on_job, m, &m->job);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "cannot start the install: %s", strerror(-r));
        log_fields(LOG_LEVEL_NOTICE, NULL, "installing %s%s", source,
                   allow_downgrade ? " (downgrade allowed)" : "");
        manager_set_last_error(m, "");
        manager_set_progress(m, 0, 0);
        manager_set_phase(m, "");
        manager_set_state(m, MANAGER_INSTALLING);
        return 0;
}

int manager_cancel(Manager *m, sd_bus_error *error)
{
        if (!m->job || job_kind(m->job) != JOB_INSTALL)
                return sd_bus_error_set(error, BUS_ERROR_NOT_RUNNING, "no install is running");
        log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .phase = m->phase }, "cancelling the install of %s",
                   m->job_source);
        job_cancel(m->job);
        return 0;
}

static int refuse_busy(Manager *m, sd_bus_error *error)
{
        return sd_bus_error_setf(error, BUS_ERROR_BUSY, "the daemon is busy (%s); try again when it is done",
                                 manager_state_to_string(m->state));
}

int manager_rollback(Manager *m, char **ret_slot, sd_bus_error *error)
{
        _cleanup_free_ char *slot = NULL;
        UpkErr err = {};
        int r;

        if (manager_busy(m))
                return refuse_busy(m, error);
        r = install_rollback(m->config, &slot, &err);
        if (r < 0)
                return bus_error_set_upk(error, &err);
        log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .slot = slot }, "rollback: slot %s is primary again",
                   slot);
        manager_refresh(m);
        if (m->config->reboot == REBOOT_AUTO) {
                _cleanup_free_ char *why = strdup_printf("start slot %s", slot);
                manager_reboot(m, why ?: "start the other slot");
        }
        *ret_slot = TAKE_PTR(slot);
        return 0;
}

int manager_mark_good(Manager *m, sd_bus_error *error)
{
        UpkErr err = {};
        int r;

        if (manager_busy(m))
                return refuse_busy(m, error);
        r = install_mark_good(m->config, &err);
        if (r < 0)
                return bus_error_set_upk(error, &err);
        log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .slot = m->booted_slot },
                   "the booted slot is marked good");
        manager_refresh(m);
        return 0;
}

/* Postpone and SetAutoUpdate: one field of the state, written atomically. */
static int update_state(Manager *m, uint64_t postpone_until, int auto_update, sd_bus_error *error)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *warning = NULL;
        UpkErr err = {};
        int r;

        /* The installer writes the state too: one writer at a time. */
        if (manager_busy(m))
                return refuse_busy(m, error);
        r = state_load(m->config->data_dir, &s, &warning);
        if (warning)
                log_msg(LOG_LEVEL_WARNING, "%s", warning);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "cannot load the state from %s: %s",
                                               m->config->data_dir, strerror(-r));
        if (auto_update >= 0)
                s->auto_update = auto_update;
        else
                s->postpone_until = postpone_until;
        r = state_save(m->config->data_dir, s, &err);
        if (r < 0)
                return bus_error_set_upk(error, &err);
        manager_refresh(m);
        return 0;
}

int manager_postpone(Manager *m, uint64_t until, sd_bus_error *error)
{
        int r = update_state(m, until, -1, error);
        if (r >= 0)
                log_msg(LOG_LEVEL_NOTICE, "automatic installs postponed until %llu µs after the epoch",
                        (unsigned long long)until);
        return r;
}

int manager_set_auto_update(Manager *m, bool enable, sd_bus_error *error)
{
        int r = update_state(m, 0, enable, error);
        if (r >= 0)
                log_msg(LOG_LEVEL_NOTICE, "automatic updates %s", enable ? "enabled" : "disabled");
        return r;
}

/* An install waits for its reboot when the booted slot is not its target and the bootloader will take
 * the target next: the daemon restarted without a reboot, and there is nothing to confirm yet. */
static bool reboot_pending(Manager *m)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_free_ char *booted = NULL, *primary = NULL;

        if (state_load(m->config->data_dir, &s, NULL) < 0 || !s->pending || !s->pending_slot)
                return false;
        if (install_open_boot(m->config, &boot, NULL) < 0 ||
            install_find_booted(m->config, boot, &booted, NULL) < 0)
                return false;
        if (streq(booted, s->pending_slot))
                return false;
        return boot_get_primary(boot, &primary, NULL) >= 0 && streq(primary, s->pending_slot);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Manager *m = userdata;

        log_msg(LOG_LEVEL_NOTICE, "received %s, stopping", strsignal((int)si->ssi_signo));
        (void)sd_notify(false, "STOPPING=1");
        m->exiting = true;
        if (m->job) {
                /* A cancelled install stops at its next block; the loop exits when the worker is joined. */
                if (job_kind(m->job) == JOB_INSTALL)
                        (void)manager_cancel(m, NULL);
                return 0;
        }
        return sd_event_exit(m->event, 0);
}

int manager_new(const char *config_path, bool no_reboot, Manager **ret, UpkErr *err)
{
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        m->no_reboot = no_reboot;
        m->state = MANAGER_CONFIRMING;
        m->auto_update = true;
        r = config_load(config_path, &m->config, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->config->n_warnings; i++)
                log_msg(LOG_LEVEL_WARNING, "%s", m->config->warnings[i]);
        if (!set_string(&m->compatible, m->config->compatible) || !set_string(&m->phase, "") ||
            !set_string(&m->available_version, "") || !set_string(&m->last_error, ""))
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");

        /* Blocked before any thread exists, so that only the loop's signalfd sees them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot block SIGTERM: %m");
        r = sd_event_default(&m->event);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create the event loop: %s", strerror(-r));
        if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m)) < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot watch SIGTERM and SIGINT: %s", strerror(-r));
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot enable the watchdog: %s", strerror(-r));
        *ret = TAKE_PTR(m);
        return 0;
}

int manager_start(Manager *m)
{
        int r;

        manager_refresh(m);
        r = sd_bus_open_system_with_description(&m->bus, "upkeepd");
        if (r < 0) {
                log_msg(LOG_LEVEL_ERROR, "cannot connect to the system bus: %s", strerror(-r));
                return r;
        }
        (void)sd_bus_set_exit_on_disconnect(m->bus, true);
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = bus_add_object(m);
        if (r < 0) {
                log_msg(LOG_LEVEL_ERROR, "cannot add the bus object: %s", strerror(-r));
                return r;
        }
        r = sd_bus_request_name(m->bus, UPKEEP_BUS_NAME, 0);
        if (r < 0) {
                log_msg(LOG_LEVEL_ERROR, "cannot own the bus name %s: %s", UPKEEP_BUS_NAME, strerror(-r));
                return r;
        }

        support_warn(m);
        r = sd_event_add_time_relative(m->event, &m->support_timer, CLOCK_BOOTTIME,
                                       SUPPORT_WARNING_INTERVAL_USEC, 3600ULL * 1000000, on_support_timer,
                                       m);
        if (r < 0)
                return r;

        if (reboot_pending(m)) {
                log_msg(LOG_LEVEL_INFO, "an installed update waits for the reboot; nothing to confirm yet");
                manager_set_state(m, MANAGER_PENDING_REBOOT);
                (void)sd_notify(false, "READY=1");
                notify_status(m);
                return 0;
        }
        r = job_start(m->event, m->config, JOB_CONFIRM, NULL, false, on_job, m, &m->job);
        if (r < 0) {
                log_msg(LOG_LEVEL_ERROR, "cannot start the confirmation: %s", strerror(-r));
                return r;
        }
        log_fields(LOG_LEVEL_INFO, &(LogFields){ .phase = "health-checks" }, "state: confirming");
        manager_set_phase(m, "health-checks");
        return 0;
}

int manager_run(Manager *m)
{
        return sd_event_loop(m->event);
}

Manager *manager_free(Manager *m)
{
        if (!m)
                return NULL;
        polkit_cancel_all(m);
        m->job = job_free(m->job);
        sd_event_source_disable_unref(m->support_timer);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        config_free(m->config);
        free(m->phase);
        free(m->current_version);
        free(m->available_version);
        free(m->compatible);
        free(m->booted_slot);
        free(m->last_error);
        free(m->support_end);
        free(m->job_source);
        free(m);
        return NULL;
}
