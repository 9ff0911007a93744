/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/random.h>
#include <systemd/sd-daemon.h>

#include "boot.h"
#include "bus.h"
#include "delta-net.h"
#include "logging.h"
#include "manager.h"
#include "hexdecoct.h"
#include "path-util.h"
#include "polkit.h"
#include "reboot.h"
#include "strv.h"
#include "support.h"
#include "version.h"

static const char *const manager_state_table[_MANAGER_STATE_MAX] = {
        [MANAGER_IDLE] = "idle",
        [MANAGER_CHECKING] = "checking",
        [MANAGER_DOWNLOADING] = "downloading",
        [MANAGER_INSTALLING] = "installing",
        [MANAGER_PENDING_REBOOT] = "pending-reboot",
        [MANAGER_CONFIRMING] = "confirming",
        [MANAGER_ERROR] = "error",
};

DEFINE_STRING_TABLE(manager_state, ManagerState, manager_state_table)

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

/* Everyone may read LastError (and PropertiesChanged carries it to everyone): without the paths of
 * root's files. The journal line logged with it has the whole message. */
static void manager_set_last_error(Manager *m, const char *msg)
{
        _cleanup_free_ char *redacted = path_redact(msg ?: "");

        if (set_string(&m->last_error, redacted ?: "(out of memory)"))
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

/* Re-read the state (not the boot backend: the booted slot is the one read at the start):
 * CurrentVersion, SupportEnd, AutoUpdate, LastCheck; emits PropertiesChanged for those that changed. */
static void manager_refresh(Manager *m)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *warning = NULL, *current = NULL;
        Capability cap = {};
        const char *changed[8];
        size_t n = 0;

        if (state_load(m->config->data_dir, &s, &warning) < 0)
                s = NULL;
        if (warning)
                log_msg(LOG_LEVEL_WARNING, "%s", warning);
        if (s && m->boot_probed)
                (void)install_current_version(m->config, s, isempty(m->booted_slot) ? NULL : m->booted_slot,
                                              &current, NULL);
        (void)support_capability(m->config, s, NULL, 0, support_today(), &cap);

        /* The running version depends on the booted slot: unknown until it was read. */
        if (m->boot_probed && set_string(&m->current_version, current))
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
        if (s) {
                const StateRollback *rb = &s->rollback;
                bool show = rb->set && !rb->acknowledged;
                _cleanup_free_ char *reason = show ? path_redact(rb->reason ?: "") : NULL;
                bool c1 = set_string(&m->rb_version, show ? rb->version : NULL);
                bool c2 = set_string(&m->rb_slot, show ? rb->slot : NULL);
                bool c3 = set_string(&m->rb_reason, show ? reason ?: "(out of memory)" : NULL);

                if (c1 || c2 || c3 || m->rb_time != (show ? rb->time : 0)) {
                        m->rb_time = show ? rb->time : 0;
                        changed[n++] = "RolledBack";
                }
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

/* Is the manager busy with a job (install or confirmation)? Then state-changing calls are refused. */
static bool manager_busy(Manager *m)
{
        return m->job != NULL;
}

/* What keeps the daemon busy: the job, where the State does not say it. */
static const char *busy_with(Manager *m)
{
        if (m->job && job_kind(m->job) == JOB_ROLLBACK)
                return "rolling back";
        if (m->job && job_kind(m->job) == JOB_MARK_GOOD)
                return "marking the booted slot good";
        if (m->job && job_kind(m->job) == JOB_CANCEL_PENDING)
                return "cancelling the update that waits for its reboot";
        return manager_state_to_string(m->state);
}

static int refuse_busy(Manager *m, sd_bus_error *error)
{
        return sd_bus_error_setf(error, BUS_ERROR_BUSY, "the daemon is busy (%s); try again when it is done",
                                 busy_with(m));
}

/* ---- the booted slots' block tables, in the background ---- */

static void on_prepare_job(Job *j, void *userdata);

/* The background job's end (finished, or stopped by prepare_stop() for `why`): one line. Cancelled, it is
 * due again (prepare_start() after the job that stopped it); otherwise done until the next confirmation. */
static void finish_prepare(Manager *m, const char *why)
{
        bool cancelled = job_is_cancelled(m->prepare_job);
        JobResult jr = {};
        UpkErr err = {};
        int r;

        r = job_join(m->prepare_job, &jr, &err);
        m->prepare_job = job_free(m->prepare_job);
        if (r == -ECANCELED && cancelled) {
                log_fields(LOG_LEVEL_DEBUG, &(LogFields){ .slot = m->booted_slot },
                           "block tables of slot %s: given up for %s (computed again when the daemon is "
                           "idle next)",
                           m->booted_slot, why ?: "a job");
                job_result_done(&jr);
                return;
        }
        m->prepare_due = false;
        if (r < 0)
                log_fields(LOG_LEVEL_WARNING, &(LogFields){ .slot = m->booted_slot },
                           "cannot prepare the booted slot's block table for delta updates: %s; the first "
                           "delta install will try again",
                           err.msg);
        else if (jr.prepare.computed > 0)
                log_fields(LOG_LEVEL_INFO, &(LogFields){ .slot = m->booted_slot },
                           "block table%s of slot%s %s ready for delta updates: %" PRIu64
                           " blocks in %.1f s",
                           jr.prepare.computed > 1 ? "s" : "", jr.prepare.computed > 1 ? "s" : "",
                           jr.prepare.slots, jr.prepare.blocks, jr.prepare.seconds);
        else
                log_fields(LOG_LEVEL_DEBUG, &(LogFields){ .slot = m->booted_slot },
                           "block tables of slot %s already up to date", m->booted_slot);
        job_result_done(&jr);
}

/* When due and nothing else runs (idle: not while an update waits for its reboot, nor after an error). */
static void prepare_start(Manager *m)
{
        int r;

        if (!m->prepare_due || m->prepare_job || m->job || m->exiting || m->state != MANAGER_IDLE ||
            !m->config->delta || isempty(m->booted_slot))
                return;
        r = job_start(m->event, m->config,
                      &(JobParams){ .kind = JOB_PREPARE_DELTA, .booted = m->booted_slot }, on_prepare_job, m,
                      &m->prepare_job);
        if (r < 0) {
                log_errno(LOG_LEVEL_WARNING, r,
                          "cannot start computing the block tables of slot %s for delta updates: %m",
                          m->booted_slot);
                m->prepare_due = false;
                return;
        }
        log_fields(LOG_LEVEL_DEBUG, &(LogFields){ .slot = m->booted_slot },
                   "computing the block tables of slot %s for delta updates in the background",
                   m->booted_slot);
}

/* Before any job: the background job gives way, cancelled and joined at once (the hashing looks at the
 * cancel between reads of 1 MiB). `why` names what it gives way to, for the debug line. */
static void prepare_stop(Manager *m, const char *why)
{
        if (!m->prepare_job)
                return;
        job_cancel(m->prepare_job);
        finish_prepare(m, why);
}

static void on_prepare_job(Job *j, void *userdata)
{
        Manager *m = userdata;
        JobSnapshot snap;

        job_snapshot(j, &snap);
        if (snap.finished)
                finish_prepare(m, NULL); /* not cancelled: its result */
}

static void on_job(Job *j, void *userdata);

/* Every job of the manager starts here (GetSlots' reads run beside it, elsewhere). The background job
 * stops first for every job that reads or writes slots or the boot state, so that nothing a caller or the
 * schedule asks for waits for it. A check (the network and metadata only) runs beside it: a device whose
 * checks or hawkBit polls come more often than its slot takes to hash would otherwise never get a table. */
static int start_job(Manager *m, const JobParams *p)
{
        int r;

        if (p->kind != JOB_CHECK)
                prepare_stop(m, job_kind_what(p->kind));
        r = job_start(m->event, m->config, p, on_job, m, &m->job);
        if (r < 0)
                prepare_start(m); /* nothing runs instead */
        return r;
}

static int on_check_timer(sd_event_source *source, uint64_t usec, void *userdata);
static void arm_timer(Manager *m, sd_event_source **source, uint64_t delay, sd_event_time_handler_t cb,
                      const char *what);

static int install_offer(Manager *m, bool allow_downgrade, bool automatic, sd_bus_error *error);
static int install_url(Manager *m, const char *url, bool allow_downgrade, sd_bus_error *error);

/* A delta that could not be done (a server without Range requests, one that answered them wrongly, a
 * bundle without a chunk index...): the same install again, from the whole bundle. */
static int restart_whole(Manager *m, const JobResult *jr, const UpkErr *why)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *url = m->job_source;
        bool offer = m->job_offer, automatic = m->job_automatic;
        int r;

        m->job_source = NULL;
        log_fields(LOG_LEVEL_NOTICE, NULL, "delta: %s; downloading the whole bundle",
                   why->msg[0] ? why->msg : strerror(-why->code));
        m->no_delta = true;
        if (offer && m->offer) {
                m->job_offer = false;
                r = install_offer(m, m->job_allow_downgrade, automatic, &error);
        } else
                r = install_url(m, url, m->job_allow_downgrade, &error);
        m->no_delta = false;
        if (r < 0) {
                m->job_source = TAKE_PTR(url);
                m->job_offer = offer;
        }
        return r;
}

static void finish_install(Manager *m)
{
        JobResult jr = {};
        InstallResult *res = &jr.install;
        UpkErr err = {};
        bool cancelled = job_is_cancelled(m->job);
        int r;

        r = job_join(m->job, &jr, &err);
        m->job = job_free(m->job);
        if (r < 0 && jr.delta_fallback && !m->exiting && restart_whole(m, &jr, &err) >= 0) {
                job_result_done(&jr);
                return;
        }
        if (r >= 0 && jr.delta.reached_install) {
                _cleanup_free_ char *line =
                        delta_net_summary(&jr.delta, jr.delta_requests, jr.delta_wire_bytes);

                m->delta_reused = jr.delta.local_bytes;
                m->delta_total = jr.delta.payload_bytes;
                m->delta_downloaded = jr.delta_wire_bytes;
                m->delta_requests = jr.delta_requests;
                bus_emit_changed(m, "LastDelta", NULL);
                log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .slot = jr.delta.slot }, "%s",
                           line ?: "delta: done (out of memory for its summary)");
        }
        if (m->stream) {
                UpkErr serr;

                /* The download's own failure says more than the installer's "read error". */
                source_stream_get_error(m->stream, &serr);
                if (cancelled && r < 0 && serr.code == -ECANCELED)
                        r = -ECANCELED; /* the read that waited for bytes ended */
                if (r < 0 && serr.kind != UPK_ERR_NONE && !(cancelled && r == -ECANCELED))
                        err = serr;
                m->stream = source_stream_free(m->stream);
        }
        manager_set_progress(m, 0, 0);
        manager_set_phase(m, "");
        if (m->job_offer) {
                m->job_offer = false;
                if (source_install_finished(m->source, m->fetch_engine, r >= 0, &err) && !m->exiting)
                        arm_timer(m, &m->check_timer, USEC_PER_SEC, on_check_timer, "check");
        }
        if (r >= 0) {
                /* What was offered is installed now: nothing more is available until the next check. */
                m->offer = offer_free(m->offer);
                if (set_string(&m->available_version, ""))
                        bus_emit_changed(m, "AvailableVersion", NULL);
                _cleanup_free_ char *msg =
                        strdup_printf("installed version %s into slot %s", res->version, res->slot);
                log_fields(LOG_LEVEL_NOTICE,
                           &(LogFields){ .phase = "done",
                                         .version = res->version,
                                         .slot = res->slot,
                                         .action = m->job_action },
                           "%s from %s; it boots once on the next reboot and must then be confirmed",
                           msg ?: "installed", m->job_source);
                manager_set_last_error(m, "");
                manager_refresh(m);
                manager_set_state(m, MANAGER_PENDING_REBOOT);
                bus_emit_finished(m, true, msg ?: "installed", "");
                if (res->reboot && !m->exiting) {
                        _cleanup_free_ char *why = strdup_printf("start version %s", res->version);
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
                        name = upk_bus_error_name(&err);
                }
                log_fields(LOG_LEVEL_ERROR, &(LogFields){ .phase = "failed", .action = m->job_action },
                           "install of %s failed: %s", m->job_source, msg ?: "out of memory");
                manager_set_last_error(m, msg ?: "out of memory");
                manager_refresh(m);
                manager_set_state(m, MANAGER_ERROR);
                bus_emit_finished(m, false, msg ?: "out of memory", name);
        }
        job_result_done(&jr);
        free(m->job_source);
        m->job_source = NULL;
        free(m->job_action);
        m->job_action = NULL;
}

/* At start, while RolledBack is set: the journal says it too. */
static void rollback_warn(Manager *m)
{
        char when[FORMAT_TIMESTAMP_MAX];

        if (isempty(m->rb_slot))
                return;
        log_fields(
                LOG_LEVEL_WARNING,
                &(LogFields){ .version = isempty(m->rb_version) ? NULL : m->rb_version, .slot = m->rb_slot },
                "the update to version %s on slot %s was rolled back (%s): %s; \"updatectl acknowledge\" "
                "once seen",
                isempty(m->rb_version) ? "(unknown)" : m->rb_version, m->rb_slot,
                format_timestamp(when, sizeof(when), m->rb_time), m->rb_reason);
}

static void finish_confirm(Manager *m)
{
        JobResult jr = {};
        ConfirmResult res;
        UpkErr err = {};
        int r;

        r = job_join(m->job, &jr, &err);
        res = jr.confirm;
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
                        rollback_warn(m);
                        m->prepare_due = true;
                        break;
                case CONFIRM_GOOD:
                        log_fields(LOG_LEVEL_NOTICE, &f, "confirmed version %s on slot %s",
                                   res.version ?: "(unknown)", res.slot);
                        manager_refresh(m);
                        manager_set_state(m, MANAGER_IDLE);
                        m->prepare_due = true;
                        break;
                case CONFIRM_FAILED:
                case CONFIRM_FELL_BACK:
                        msg = strdup_printf("update to version %s on slot %s failed: %s",
                                            res.version ?: "(unknown)", res.slot, res.reason ?: "");
                        log_fields(LOG_LEVEL_ERROR, &f, "%s", msg ?: "update failed");
                        manager_refresh(m);
                        if (res.outcome == CONFIRM_FELL_BACK) {
                                /* Up on the old slot, which works: RolledBack tells, as after a
                                 * health check's rollback. The old slot is confirmed good again. */
                                manager_set_state(m, MANAGER_IDLE);
                                m->prepare_due = true;
                                break;
                        }
                        /* Still on the failed slot, until the reboot back. */
                        manager_set_last_error(m, msg ?: "update failed");
                        manager_set_state(m, MANAGER_ERROR);
                        if (res.reboot && !m->exiting)
                                manager_reboot(m, "go back to the previous slot");
                        break;
                case _CONFIRM_OUTCOME_MAX:
                case _CONFIRM_OUTCOME_INVALID:
                        break;
                }
        }
        job_result_done(&jr);
        (void)sd_notify(false, "READY=1");
        notify_status(m);
}

static void finish_check(Manager *m);
static void finish_probe(Manager *m);
static void finish_boot_job(Manager *m);
static int start_check(Manager *m);
static void maybe_auto_install(Manager *m);

/* The install of the source's offer: progress for the source, which also says when the server cancelled
 * it; then it stops before anything is activated. */
static void install_watch(Manager *m, uint64_t done, uint64_t total)
{
        if (!m->job || job_kind(m->job) != JOB_INSTALL || !m->job_offer || job_is_cancelled(m->job))
                return;
        if (!source_install_progress(m->source, m->fetch_engine, done, total))
                return;
        log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .phase = m->phase },
                   "cancelling the install of %s: the update server cancelled it", m->job_source);
        job_cancel(m->job);
        if (m->stream)
                source_stream_cancel(m->stream);
}

/* Also between progress reports (a download's progress may not be known): every second. */
static int on_watch_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        Manager *m = userdata;

        if (!m->job || !m->job_offer)
                return 0;
        install_watch(m, m->progress_done, m->progress_total);
        (void)sd_event_source_set_time_relative(source, USEC_PER_SEC);
        return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
}

static void on_job(Job *j, void *userdata)
{
        Manager *m = userdata;
        JobSnapshot snap;

        job_snapshot(j, &snap);
        if (job_kind(j) == JOB_INSTALL && m->stream && !snap.finished)
                manager_set_state(m, source_stream_transferring(m->stream) ? MANAGER_DOWNLOADING
                                                                           : MANAGER_INSTALLING);
        if (job_kind(j) == JOB_INSTALL && snap.phase >= 0) {
                const char *phase = install_phase_to_string(snap.phase);
                if (!streq(m->phase, phase))
                        log_fields(LOG_LEVEL_INFO, &(LogFields){ .phase = phase }, "install: %s", phase);
                manager_set_phase(m, phase);
                manager_set_progress(m, snap.done, snap.total);
                if (!snap.finished)
                        install_watch(m, snap.done, snap.total);
        }
        if (!snap.finished)
                return;
        switch (job_kind(j)) {
        case JOB_INSTALL:
                finish_install(m);
                break;
        case JOB_CONFIRM:
                finish_confirm(m);
                break;
        case JOB_CHECK:
                finish_check(m);
                break;
        case JOB_PROBE:
                finish_probe(m);
                break;
        case JOB_ROLLBACK:
        case JOB_MARK_GOOD:
        case JOB_CANCEL_PENDING:
                finish_boot_job(m);
                break;
        case JOB_SLOTS:         /* runs beside the job: on_slots_job() */
        case JOB_PREPARE_DELTA: /* in the background: on_prepare_job() */
        case _JOB_KIND_MAX:
        case _JOB_KIND_INVALID:
                break;
        }
        /* The worker's arena and the bundle's buffers go back to the system. */
        (void)malloc_trim(0);
        if (m->exiting) {
                if (!m->slots_job)
                        (void)sd_event_exit(m->event, 0);
                return;
        }
        if (!m->job && m->check_due)
                (void)start_check(m);
        if (!m->job && m->hold_due) {
                m->hold_due = false;
                maybe_auto_install(m);
        }
        prepare_start(m);
}

/* `what` names the bundle in the log: its path or URL; `version` the offered version, if known. */
static int start_install(Manager *m, const char *what, const char *version, const JobParams *p,
                         bool automatic, sd_bus_error *error)
{
        int r;

        free(m->job_source);
        free(m->job_action);
        m->job_source = strdup(what);
        m->job_action = p->action ? strdup(p->action) : NULL;
        if (!m->job_source || (p->action && !m->job_action))
                return -ENOMEM;
        r = start_job(m, p);
        if (r < 0) {
                m->stream = source_stream_free(m->stream);
                return sd_bus_error_set_errnof(error, r, "cannot start the install: %m");
        }
        m->job_automatic = automatic;
        m->job_allow_downgrade = p->allow_downgrade;
        log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .version = version, .action = p->action },
                   "%sinstalling %s%s%s%s%s", automatic ? "automatically " : "", version ? "version " : "",
                   version ?: "", version ? " from " : "", what,
                   p->allow_downgrade ? " (downgrade allowed)" : "");
        manager_set_last_error(m, "");
        manager_set_progress(m, 0, 0);
        manager_set_phase(m, "");
        /* A delta downloads as it installs, to its end. */
        manager_set_state(m, (m->stream && source_stream_transferring(m->stream)) || p->delta_url
                                     ? MANAGER_DOWNLOADING
                                     : MANAGER_INSTALLING);
        return 0;
}

/* The offered update: streamed from the repository (tuf), or a file (local). */
static bool offer_manifest_sha256(const Offer *o, uint8_t ret[32])
{
#if HAVE_TUF
        return o->target && o->target->has_manifest_sha256 && o->target->manifest_sha256 &&
               hex_decode(o->target->manifest_sha256, ret, 32) >= 0;
#else
        return false;
#endif
}

static int install_offer(Manager *m, bool allow_downgrade, bool automatic, sd_bus_error *error)
{
        JobParams p = { .kind = JOB_INSTALL,
                        .allow_downgrade = allow_downgrade,
                        .action = m->offer->action_id };
        _cleanup_strv_free_erase_ char **headers = NULL;
        bool restart = m->no_delta; /* restart_whole(): the source saw this install start */
        uint8_t digest[32];
        UpkErr err = {};
        int r;

        if (m->offer->target && !m->offer->action_id && !m->no_delta &&
            install_delta_possible(m->config, m->booted_slot) && offer_manifest_sha256(m->offer, digest)) {
                /* TUF: the target's custom.manifest_sha256 ties a partial download to the repository's
                 * signature. */
                p.delta_url = m->offer->location;
                p.delta_manifest_sha256 = digest;
                p.delta_name = m->offer->name;
        } else if (m->offer->action_id && !m->offer->kept && !m->no_delta &&
                   install_delta_possible(m->config, m->booted_slot)) {
                /* hawkBit: the ranges with the server's credentials; the artifact's announced size must
                 * be the file's. Its sha256 cannot be checked on a part of it: the bundle's signature
                 * over the manifest and the signed chunk index cover every byte installed. */
                r = source_action_headers(m->source, m->offer, &headers, &err);
                if (r < 0)
                        return bus_error_set_upk(error, &err);
                p.delta_url = m->offer->location;
                p.delta_name = m->offer->name;
                p.delta_headers = (const char *const *)headers;
                p.delta_size = m->offer->length;
        } else if (m->offer->target || (m->offer->action_id && !m->offer->kept)) {
                r = m->offer->action_id ? source_stream_open_action(m->fetch_engine, m->source, m->offer,
                                                                    &m->stream, &err)
                                        : source_stream_open_offer(m->fetch_engine, m->config, m->offer,
                                                                   &m->stream, &err);
                if (r < 0)
                        return bus_error_set_upk(error, &err);
                p.next = source_stream_next;
                p.next_userdata = m->stream;
        } else
                p.path = m->offer->location;
        r = start_install(m, m->offer->location, m->offer->version, &p, automatic, error);
        if (r >= 0) {
                m->job_offer = true;
                if (!restart)
                        source_install_started(m->source, m->fetch_engine, m->offer);
                arm_timer(m, &m->watch_timer, USEC_PER_SEC, on_watch_timer, "install watch");
        }
        return r;
}

static void deferred_done(Manager *m)
{
        free(m->deferred.source);
        m->deferred.source = NULL;
        m->deferred.fd = safe_close(m->deferred.fd);
}

/* The user's install waits for the check it cancelled. */
static int defer_install(Manager *m, const char *source, int fd, bool allow_downgrade, sd_bus_error *error)
{
        m->deferred.fd = -EBADF;
        if (fd >= 0) {
                m->deferred.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (m->deferred.fd < 0)
                        return sd_bus_error_set_errnof(error, errno, "cannot duplicate the descriptor: %m");
        }
        m->deferred.source = strdup(source);
        if (!m->deferred.source) {
                deferred_done(m);
                return -ENOMEM;
        }
        m->deferred.allow_downgrade = allow_downgrade;
        log_msg(LOG_LEVEL_NOTICE, "cancelling the running check for the install of %s",
                streq(source, "-") ? "the bundle piped by the caller" : source);
        job_cancel(m->job);
        source_cancel_check(m->source);
        return 0;
}

/* The user's answer to the offer that waits for consent: sent by a check started now. Confirmed, the
 * deployment that follows is installed at once (its Finished is the caller's); denied, the check's
 * Finished says so. */
int manager_consent(Manager *m, bool confirm, const char *reason, sd_bus_error *error)
{
        int r;

        if (!m->offer || !m->offer->needs_consent)
                return sd_bus_error_set(error, BUS_ERROR_NO_UPDATE,
                                        confirm ? "no update waits for consent"
                                                : "no update waits for consent: nothing to decline");
        if (manager_busy(m))
                return refuse_busy(m, error);
        r = source_set_consent(m->source, m->offer->action_id, confirm, reason);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "cannot keep the answer: %m");
        log_fields(LOG_LEVEL_NOTICE,
                   &(LogFields){ .version = m->offer->version, .action = m->offer->action_id },
                   "update %s: the user %s it%s%s", m->offer->version, confirm ? "confirms" : "declines",
                   reason && reason[0] ? ": " : "", reason ?: "");
        r = start_check(m);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "cannot start the check: %m");
        m->consent_check = true;
        m->consent_confirm = confirm;
        return 0;
}

/* From a URL: a delta when it may be one ([install] delta), else the whole bundle streamed. */
static int install_url(Manager *m, const char *url, bool allow_downgrade, sd_bus_error *error)
{
        JobParams p = { .kind = JOB_INSTALL, .allow_downgrade = allow_downgrade };
        UpkErr err = {};
        int r;

        if (!m->no_delta && install_delta_possible(m->config, m->booted_slot))
                p.delta_url = url;
        else {
                r = source_stream_open_url(m->fetch_engine, m->config, url, &m->stream, &err);
                if (r < 0)
                        return bus_error_set_upk(error, &err);
                p.next = source_stream_next;
                p.next_userdata = m->stream;
        }
        return start_install(m, url, NULL, &p, false, error);
}

int manager_install(Manager *m, const char *source, int fd, bool allow_downgrade, sd_bus_error *error)
{
        JobParams p = { .kind = JOB_INSTALL, .allow_downgrade = allow_downgrade };
        UpkErr err = {};
        int r;

        if ((fd >= 0) != streq(source, "-"))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "the source \"-\" and the option \"fd\" go together");
        if (!isempty(source) && !streq(source, "-") && !strneq(source, "http://", 7) &&
            !strneq(source, "https://", 8) && source[0] != '/')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "the bundle must be given by its absolute path, not \"%s\"",
                                         source);
        /* A check never holds up an install a user asked for. */
        if (m->job && job_kind(m->job) == JOB_CHECK && !isempty(source) && !m->deferred.source)
                return defer_install(m, source, fd, allow_downgrade, error);
        if (manager_busy(m) || m->deferred.source)
                return refuse_busy(m, error);
        if (fd >= 0) {
                int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (copy < 0)
                        return sd_bus_error_set_errnof(error, errno, "cannot duplicate the descriptor: %m");
                r = source_stream_open_fd(copy, "the bundle piped by the caller", &m->stream, &err);
                if (r < 0)
                        return bus_error_set_upk(error, &err);
                p.next = source_stream_next;
                p.next_userdata = m->stream;
                return start_install(m, "the bundle piped by the caller", NULL, &p, false, error);
        }
        if (isempty(source)) {
                if (!m->offer)
                        return sd_bus_error_set(error, BUS_ERROR_NO_UPDATE,
                                                "no update is available (check first: \"updatectl check\")");
                if (m->offer->needs_consent)
                        return manager_consent(m, true, NULL, error);
                return install_offer(m, allow_downgrade, false, error);
        }
        if (strneq(source, "http://", 7) || strneq(source, "https://", 8))
                return install_url(m, source, allow_downgrade, error);
        if (source[0] != '/')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "the bundle must be given by its absolute path, not \"%s\"",
                                         source);
        p.path = source;
        return start_install(m, source, NULL, &p, false, error);
}

static int start_boot_job(Manager *m, JobKind kind, sd_bus_message *call, sd_bus_error *error);

int manager_cancel(Manager *m, sd_bus_message *call, sd_bus_error *error)
{
        int r;

        if (m->job && job_kind(m->job) == JOB_CHECK) {
                log_msg(LOG_LEVEL_NOTICE, "cancelling the running check");
                job_cancel(m->job);
                source_cancel_check(m->source); /* its download stops at once */
                return 0;
        }
        if ((!m->job || job_kind(m->job) != JOB_INSTALL) && m->state == MANAGER_PENDING_REBOOT) {
                r = start_boot_job(m, JOB_CANCEL_PENDING, call, error);
                return r < 0 ? r : 1;
        }
        if (!m->job || job_kind(m->job) != JOB_INSTALL)
                return sd_bus_error_set(error, BUS_ERROR_NOT_RUNNING, "no install is running");
        log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .phase = m->phase }, "cancelling the install of %s",
                   m->job_source);
        job_cancel(m->job);
        if (m->stream)
                source_stream_cancel(m->stream); /* a reader waiting for bytes wakes up */
        return 0;
}

/* ---- checks and the policy ---- */

static uint64_t random_u64(void)
{
        uint64_t x = 0;

        if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x))
                x = now_usec() ^ ((uint64_t)getpid() << 32);
        return x;
}

#if HAVE_TEST_HOOKS
/* A test may shorten the timer: UPKEEP_TEST_<NAME>_SEC (whole seconds). */
static bool test_override_usec(const char *name, uint64_t *ret)
{
        const char *v = secure_getenv(name);
        uint64_t sec;

        if (!v || safe_atou64(v, &sec) < 0 || sec > 30ULL * 24 * 3600)
                return false;
        *ret = sec * USEC_PER_SEC;
        return true;
}
#endif

static void manager_setup_schedule(Manager *m)
{
        schedule_init(&m->schedule, m->config->poll_interval_usec, m->config->jitter_usec);
#if HAVE_TEST_HOOKS
        uint64_t v;

        if (test_override_usec("UPKEEP_TEST_FIRST_CHECK_SEC", &v))
                m->schedule.first_min_usec = m->schedule.first_max_usec = v;
        if (test_override_usec("UPKEEP_TEST_POLL_INTERVAL_SEC", &v) && v > 0) {
                m->schedule.interval_usec = v;
                if (m->schedule.jitter_usec > v)
                        m->schedule.jitter_usec = v;
        }
        if (test_override_usec("UPKEEP_TEST_BACKOFF_SEC", &v) && v > 0)
                m->schedule.backoff_min_usec = v;
#endif
}

static int on_check_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        Manager *m = userdata;

        if (m->job) {
                m->check_due = true; /* when the running job ends */
                return 0;
        }
        (void)start_check(m);
        return 0;
}

static void arm_timer(Manager *m, sd_event_source **source, uint64_t delay, sd_event_time_handler_t cb,
                      const char *what)
{
        int r;

        if (*source) {
                r = sd_event_source_set_time_relative(*source, delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(*source, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time_relative(m->event, source, CLOCK_BOOTTIME, delay, 100 * USEC_PER_MSEC,
                                               cb, m);
                if (r >= 0)
                        (void)sd_event_source_set_description(*source, what);
        }
        if (r < 0)
                log_errno(LOG_LEVEL_ERROR, r, "cannot arm the %s timer: %m", what);
}

static void schedule_check(Manager *m, uint64_t delay)
{
        char buf[FORMAT_TIMESPAN_MAX];

        arm_timer(m, &m->check_timer, delay, on_check_timer, "check");
        log_msg(LOG_LEVEL_INFO, "next check in %s", format_timespan(buf, sizeof(buf), delay));
}

static int on_hold_timer(sd_event_source *source, uint64_t usec, void *userdata);

/* After a check, or when a hold ends: install the offered update if the policy allows it now. */
static void maybe_auto_install(Manager *m)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        const Config *c = m->config;
        AutoInputs in;
        AutoDecision d;
        bool rolled_back;
        uint64_t retry = 0;
        int r;

        if (!m->offer || m->job || m->exiting || m->state == MANAGER_PENDING_REBOOT ||
            m->offer->needs_consent)
                return;
        if (state_load(c->data_dir, &s, NULL) < 0)
                s = NULL;
        /* The version rolled back here (acknowledged or not) and older ones are left out. */
        rolled_back = state_rollback_covers(s, m->offer->version);
        in = (AutoInputs){
                .policy = c->auto_install,
                .auto_update = s ? s->auto_update : true,
                .has_security = m->offer->has_manifest && m->offer->has_security,
                .security = m->offer->security,
                .now_usec = now_usec(),
                .postpone_until = s ? s->postpone_until : 0,
                .has_window = c->has_maintenance_window,
                .window_start_min = c->window_start_min,
                .window_end_min = c->window_end_min,
                .rolled_back = rolled_back,
        };
        auto_inputs_set_local_time(&in, (time_t)(in.now_usec / USEC_PER_SEC));
        d = auto_decide(&in, &retry);
        if (d != AUTO_DECISION_INSTALL) {
                char buf[FORMAT_TIMESPAN_MAX];

                if (retry > 0) {
                        arm_timer(m, &m->hold_timer, retry, on_hold_timer, "hold");
                        log_fields(
                                LOG_LEVEL_NOTICE, &(LogFields){ .version = m->offer->version },
                                "update %s %s; asking again in %s (\"updatectl install\" installs it now)",
                                m->offer->version, auto_decision_to_string(d),
                                format_timespan(buf, sizeof(buf), retry));
                } else
                        log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .version = m->offer->version },
                                   "update %s %s (\"updatectl install\" installs it)", m->offer->version,
                                   auto_decision_to_string(d));
                return;
        }
        r = install_offer(m, false, true, &error);
        if (r < 0) {
                log_fields(LOG_LEVEL_ERROR, &(LogFields){ .version = m->offer->version },
                           "cannot start the automatic install of %s: %s", m->offer->version,
                           error.message ?: strerror(-r));
                manager_set_last_error(m, error.message ?: strerror(-r));
                manager_set_state(m, MANAGER_ERROR);
        }
}

static int on_hold_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        Manager *m = userdata;

        if (m->job) {
                m->hold_due = true; /* decided when the running job ends */
                return 0;
        }
        maybe_auto_install(m);
        return 0;
}

static int start_check(Manager *m)
{
        JobParams p = { .kind = JOB_CHECK, .source = m->source };
        _cleanup_(state_freep) UpkState *s = NULL;
        int r;

        m->check_due = false;
        manager_refresh(m);
        if (state_load(m->config->data_dir, &s, NULL) < 0)
                s = NULL;
        p.current_version = isempty(m->current_version) ? NULL : m->current_version;
        /* The security policy decides by the bundle's signed manifest: read its first bytes too. */
        p.want_manifest = m->config->auto_install == AUTO_INSTALL_SECURITY && (!s || s->auto_update);
        r = start_job(m, &p);
        if (r < 0) {
                log_errno(LOG_LEVEL_ERROR, r, "cannot start the check: %m");
                schedule_check(m, schedule_after_check(&m->schedule, false, random_u64()));
                return r;
        }
        m->state_before_check = m->state;
        log_fields(LOG_LEVEL_INFO, NULL, "checking %s for updates",
                   source_type_to_string(source_get_type(m->source)));
        manager_set_state(m, MANAGER_CHECKING);
        return 0;
}

static void reply_check_calls(Manager *m, const char *available, const UpkErr *err)
{
        for (size_t i = 0; i < m->n_check_calls; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                if (err) {
                        (void)bus_error_set_upk(&error, err);
                        (void)sd_bus_reply_method_error(m->check_calls[i], &error);
                } else
                        (void)sd_bus_reply_method_return(m->check_calls[i], "s", available);
                m->check_calls[i] = sd_bus_message_unref(m->check_calls[i]);
        }
        m->n_check_calls = 0;
}

static void save_last_check(Manager *m, uint64_t when)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        UpkErr err = {};

        if (state_load(m->config->data_dir, &s, NULL) < 0)
                return;
        s->last_check = when;
        if (state_save(m->config->data_dir, s, &err) < 0)
                log_msg(LOG_LEVEL_WARNING, "cannot save the time of the check: %s", err.msg);
        manager_refresh(m);
}

static void finish_check(Manager *m)
{
        JobResult jr = {};
        _cleanup_(offer_freep) Offer *offer = NULL;
        ManagerState back =
                m->state_before_check == MANAGER_PENDING_REBOOT ? MANAGER_PENDING_REBOOT : MANAGER_IDLE;
        char buf[FORMAT_TIMESPAN_MAX];
        bool cancelled = job_is_cancelled(m->job);
        UpkErr err = {};
        uint64_t delay;
        int r;

        r = job_join(m->job, &jr, &err);
        m->job = job_free(m->job);
        offer = TAKE_PTR(jr.offer);
        job_result_done(&jr);
        if (r < 0 && cancelled) {
                UpkErr cerr = { .kind = UPK_ERR_IO, .code = -ECANCELED, .msg = "the check was cancelled" };

                delay = schedule_after_check(&m->schedule, false, random_u64());
                m->consent_check = false;
                log_msg(LOG_LEVEL_NOTICE, "the check was cancelled; next check in %s",
                        format_timespan(buf, sizeof(buf), delay));
                manager_set_state(m, back);
                reply_check_calls(m, NULL, &cerr);
                arm_timer(m, &m->check_timer, delay, on_check_timer, "check");
                if (m->deferred.source && !m->exiting) {
                        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                        _cleanup_free_ char *source = TAKE_PTR(m->deferred.source);

                        /* Its caller follows the install: no Finished for the check. */
                        r = manager_install(m, source, m->deferred.fd, m->deferred.allow_downgrade, &error);
                        deferred_done(m);
                        if (r < 0) {
                                const char *msg = error.message ?: strerror(-r);
                                log_fields(LOG_LEVEL_ERROR, &(LogFields){ .phase = "failed" },
                                           "install of %s failed: %s", source, msg);
                                manager_set_last_error(m, msg);
                                manager_set_state(m, MANAGER_ERROR);
                                bus_emit_finished(m, false, msg, error.name ?: BUS_ERROR_FAILED);
                        }
                } else
                        bus_emit_finished(m, false, "the check was cancelled", BUS_ERROR_CANCELLED);
                deferred_done(m);
                return;
        }
        if (r < 0) {
                _cleanup_free_ char *msg =
                        strdup_printf("check failed: %s", err.msg[0] ? err.msg : strerror(-r));

                delay = schedule_after_check(&m->schedule, false, random_u64());
                /* The server's Retry-After (429, 503) when it asks for longer than the backoff. */
                if (source_retry_after_usec(m->source) > delay)
                        delay = source_retry_after_usec(m->source);
                log_msg(LOG_LEVEL_ERROR, "%s; retrying in %s", msg ?: "check failed",
                        format_timespan(buf, sizeof(buf), delay));
                manager_set_last_error(m, err.msg[0] ? err.msg : strerror(-r));
                manager_set_state(m, back == MANAGER_PENDING_REBOOT ? back : MANAGER_ERROR);
                m->consent_check = false;
                reply_check_calls(m, NULL, &err);
                bus_emit_finished(m, false, msg ?: "check failed", upk_bus_error_name(&err));
                arm_timer(m, &m->check_timer, delay, on_check_timer, "check");
                return;
        }

        save_last_check(m, now_usec());
        manager_set_last_error(m, "");
        if (!offer || !offer_same(offer, m->offer))
                m->hold_timer = sd_event_source_disable_unref(m->hold_timer);
        offer_free(m->offer);
        m->offer = TAKE_PTR(offer);
        if (set_string(&m->available_version, m->offer ? m->offer->version : ""))
                bus_emit_changed(m, "AvailableVersion", NULL);
        manager_set_state(m, back);

        _cleanup_free_ char *msg =
                m->offer ? strdup_printf("update %s available", m->offer->version) : strdup("up to date");
        if (m->offer)
                log_fields(LOG_LEVEL_NOTICE,
                           &(LogFields){ .version = m->offer->version, .action = m->offer->action_id },
                           "update %s available (%s, %" PRIu64 " bytes%s%s)", m->offer->version,
                           m->offer->name, m->offer->length,
                           m->offer->has_manifest && m->offer->has_security ? ", " : "",
                           m->offer->has_manifest && m->offer->has_security
                                   ? security_type_to_string(m->offer->security)
                                   : "");
        else
                log_msg(LOG_LEVEL_INFO, "up to date (%s)", m->current_version);
        reply_check_calls(m, m->offer ? m->offer->version : "", NULL);
        if (m->consent_needed != (m->offer && m->offer->needs_consent)) {
                m->consent_needed = m->offer && m->offer->needs_consent;
                bus_emit_changed(m, "ConsentNeeded", NULL);
        }
        if (m->consent_check && m->consent_confirm && m->offer && m->offer->approved && !m->exiting) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                /* The user said yes: installed now, whatever the automatic policy; the caller follows
                 * the install's Finished. */
                m->consent_check = false;
                r = install_offer(m, false, false, &error);
                if (r < 0) {
                        const char *why = error.message ?: strerror(-r);

                        log_fields(LOG_LEVEL_ERROR, &(LogFields){ .phase = "failed" },
                                   "install of %s failed: %s", m->offer->version, why);
                        manager_set_last_error(m, why);
                        manager_set_state(m, MANAGER_ERROR);
                        bus_emit_finished(m, false, why, error.name ?: BUS_ERROR_FAILED);
                }
        } else if (m->consent_check && m->consent_confirm) {
                m->consent_check = false;
                bus_emit_finished(
                        m, false,
                        "the consent was sent, but the server gives no deployment to install (yet)",
                        BUS_ERROR_NO_UPDATE);
        } else {
                m->consent_check = false;
                bus_emit_finished(m, true, msg ?: "checked", "");
        }

        delay = schedule_after_check(&m->schedule, true, random_u64());
        if (source_next_check_usec(m->source) > 0) {
                /* The server's own interval (hawkBit's sleep), with up to a tenth of it as jitter. */
                uint64_t hint = source_next_check_usec(m->source);

                delay = hint + random_u64() % (hint / 10 + 1);
        }
        arm_timer(m, &m->check_timer, delay, on_check_timer, "check");
        log_msg(LOG_LEVEL_INFO, "next check in %s", format_timespan(buf, sizeof(buf), delay));
        maybe_auto_install(m);
}

int manager_check(Manager *m, sd_bus_message *call, sd_bus_error *error)
{
        int r;

        if (source_get_type(m->source) == SOURCE_NONE)
                return sd_bus_error_set(error, BUS_ERROR_NO_SOURCE,
                                        "no update source is configured ([source] type = none)");
        if (m->job && job_kind(m->job) != JOB_CHECK)
                return refuse_busy(m, error);
        if (m->n_check_calls >= CHECK_CALLS_MAX)
                return sd_bus_error_set(error, BUS_ERROR_BUSY, "too many callers wait for this check");
        if (!m->job) {
                r = start_check(m);
                if (r < 0)
                        return sd_bus_error_set_errnof(error, r, "cannot start the check: %m");
        }
        if (call)
                m->check_calls[m->n_check_calls++] = sd_bus_message_ref(call);
        return 0;
}

/* Rollback, MarkGood and the Cancel of a pending update: the boot backend is written in the worker;
 * `call` is answered at the end. */
static int start_boot_job(Manager *m, JobKind kind, sd_bus_message *call, sd_bus_error *error)
{
        int r;

        if (manager_busy(m))
                return refuse_busy(m, error);
        r = start_job(m, &(JobParams){ .kind = kind });
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "cannot start the %s: %m",
                                               kind == JOB_ROLLBACK    ? "rollback"
                                               : kind == JOB_MARK_GOOD ? "mark-good"
                                                                       : "cancel");
        m->job_call = sd_bus_message_ref(call);
        return 0;
}

int manager_rollback(Manager *m, sd_bus_message *call, sd_bus_error *error)
{
        return start_boot_job(m, JOB_ROLLBACK, call, error);
}

int manager_mark_good(Manager *m, sd_bus_message *call, sd_bus_error *error)
{
        return start_boot_job(m, JOB_MARK_GOOD, call, error);
}

static void slots_read_next(Manager *m);

static void finish_boot_job(Manager *m)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = TAKE_PTR(m->job_call);
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        JobKind kind = job_kind(m->job);
        JobResult jr = {};
        UpkErr err = {};
        int r;

        r = job_join(m->job, &jr, &err);
        m->job = job_free(m->job);
        /* Whatever happened, the State follows the boot backend and the state file again. */
        if (jr.reboot_pending)
                manager_set_state(m, MANAGER_PENDING_REBOOT);
        else if (m->state == MANAGER_PENDING_REBOOT)
                manager_set_state(m, MANAGER_IDLE);
        if (r < 0) {
                (void)bus_error_set_upk(&error, &err);
                if (call)
                        (void)sd_bus_reply_method_error(call, &error);
        } else if (kind == JOB_CANCEL_PENDING || (kind == JOB_ROLLBACK && jr.cancelled)) {
                log_fields(LOG_LEVEL_NOTICE,
                           &(LogFields){ .slot = m->booted_slot, .version = jr.cancelled_version },
                           "the update that waited for its reboot is cancelled; the booted slot %s stays "
                           "primary",
                           m->booted_slot);
                manager_refresh(m);
                m->prepare_due = true; /* the booted slot, good, is the next boot's again */
                if (call && kind == JOB_ROLLBACK)
                        (void)sd_bus_reply_method_return(call, "s", jr.slot);
                else if (call)
                        (void)sd_bus_reply_method_return(call, NULL);
        } else if (kind == JOB_ROLLBACK) {
                log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .slot = jr.slot },
                           "rollback: slot %s is primary again", jr.slot);
                manager_refresh(m);
                m->prepare_due = false; /* the next boot is the other slot's */
                if (m->config->reboot == REBOOT_AUTO) {
                        _cleanup_free_ char *why = strdup_printf("start slot %s", jr.slot);
                        manager_reboot(m, why ?: "start the other slot");
                }
                if (call)
                        (void)sd_bus_reply_method_return(call, "s", jr.slot);
        } else {
                log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .slot = m->booted_slot },
                           "the booted slot is marked good");
                manager_refresh(m);
                m->prepare_due = true;
                if (call)
                        (void)sd_bus_reply_method_return(call, NULL);
        }
        job_result_done(&jr);
        if (!m->exiting)
                slots_read_next(m); /* the GetSlots calls that waited for it */
}

/* ---- GetSlots ---- */

static void on_slots_job(Job *j, void *userdata);
static void fail_slots_calls(Manager *m, size_t n, int r, const char *why);

/* Start a read for the waiting GetSlots calls, unless one runs, or a Rollback or MarkGood writes the
 * boot backend: its result is what they see. */
static void slots_read_next(Manager *m)
{
        int r;

        if (m->slots_job || m->n_slots_calls == 0 ||
            (m->job && (job_kind(m->job) == JOB_ROLLBACK || job_kind(m->job) == JOB_MARK_GOOD ||
                        job_kind(m->job) == JOB_CANCEL_PENDING)))
                return;
        r = job_start(m->event, m->config, &(JobParams){ .kind = JOB_SLOTS }, on_slots_job, m,
                      &m->slots_job);
        if (r < 0) {
                _cleanup_free_ char *why = strdup_printf("cannot read the boot backend: %s", strerror(-r));
                fail_slots_calls(m, m->n_slots_calls, r, why ?: "cannot read the boot backend");
                return;
        }
        m->n_slots_served = m->n_slots_calls;
}

/* Answer the first `n` waiting calls: with the slots of `jr`, or with `error`; the others move up. */
static void reply_slots_calls(Manager *m, size_t n, const JobResult *jr, const sd_bus_error *error)
{
        for (size_t i = 0; i < n; i++) {
                sd_bus_message *call = m->slots_calls[i];
                int r;

                if (error)
                        (void)sd_bus_reply_method_error(call, error);
                else if ((r = bus_reply_slots(m, call, jr->slot_states, jr->n_slot_states)) < 0)
                        (void)sd_bus_reply_method_errnof(call, r, "cannot send the slots: %m");
                sd_bus_message_unref(call);
        }
        memmove(m->slots_calls, m->slots_calls + n, (m->n_slots_calls - n) * sizeof(m->slots_calls[0]));
        m->n_slots_calls -= n;
        m->n_slots_served = 0;
}

static void fail_slots_calls(Manager *m, size_t n, int r, const char *why)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        (void)sd_bus_error_set_errnof(&error, r, "%s", why);
        reply_slots_calls(m, n, NULL, &error);
}

static void on_slots_job(Job *j, void *userdata)
{
        Manager *m = userdata;
        JobSnapshot snap;
        JobResult jr = {};

        job_snapshot(j, &snap);
        if (!snap.finished)
                return;
        (void)job_join(j, &jr, NULL);
        m->slots_job = job_free(m->slots_job);
        reply_slots_calls(m, m->n_slots_served, &jr, NULL);
        job_result_done(&jr);
        if (m->exiting) {
                fail_slots_calls(m, m->n_slots_calls, -ESHUTDOWN, "the daemon is stopping");
                if (!m->job)
                        (void)sd_event_exit(m->event, 0);
                return;
        }
        slots_read_next(m);
}

int manager_get_slots(Manager *m, sd_bus_message *call, sd_bus_error *error)
{
        if (m->n_slots_calls >= SLOTS_CALLS_MAX)
                return sd_bus_error_set(error, BUS_ERROR_BUSY, "too many callers wait for the slots");
        m->slots_calls[m->n_slots_calls++] = sd_bus_message_ref(call);
        slots_read_next(m); /* or the read that runs now, or the Rollback or MarkGood, ends first */
        return 0;
}

/* The state, for a change written from the loop (Postpone, SetAutoUpdate, AcknowledgeRollback). */
static int load_state_to_change(Manager *m, UpkState **ret, sd_bus_error *error)
{
        _cleanup_free_ char *warning = NULL;
        int r;

        /* The installer writes the state too: one writer at a time (a check writes it only from here). */
        if (m->job && job_kind(m->job) != JOB_CHECK)
                return refuse_busy(m, error);
        r = state_load(m->config->data_dir, ret, &warning);
        if (warning)
                log_msg(LOG_LEVEL_WARNING, "%s", warning);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "cannot load the state from %s: %m",
                                               m->config->data_dir);
        return 0;
}

/* Postpone and SetAutoUpdate: one field of the state, written atomically. */
static int update_state(Manager *m, uint64_t postpone_until, int auto_update, sd_bus_error *error)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        UpkErr err = {};
        int r;

        r = load_state_to_change(m, &s, error);
        if (r < 0)
                return r;
        if (auto_update >= 0)
                s->auto_update = auto_update;
        else
                s->postpone_until = postpone_until;
        r = state_save(m->config->data_dir, s, &err);
        if (r < 0)
                return bus_error_set_upk(error, &err);
        manager_refresh(m);
        /* A held update may be allowed now (switched on, postponement lifted), or held longer. */
        m->hold_timer = sd_event_source_disable_unref(m->hold_timer);
        maybe_auto_install(m);
        return 0;
}

int manager_postpone(Manager *m, uint64_t until, sd_bus_error *error)
{
        int r = update_state(m, until, -1, error);
        if (r >= 0) {
                char when[FORMAT_TIMESTAMP_MAX];
                log_msg(LOG_LEVEL_NOTICE, "automatic installs postponed until %s",
                        format_timestamp(when, sizeof(when), until));
        }
        return r;
}

int manager_set_auto_update(Manager *m, bool enable, sd_bus_error *error)
{
        int r = update_state(m, 0, enable, error);
        if (r >= 0) {
                log_msg(LOG_LEVEL_NOTICE, "automatic updates %s", enable ? "enabled" : "disabled");
                source_set_auto_update(m->source, enable);
        }
        return r;
}

int manager_acknowledge_rollback(Manager *m, char **ret_version, sd_bus_error *error)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *version = NULL;
        StateRollback *rb;
        UpkErr err = {};
        int r;

        r = load_state_to_change(m, &s, error);
        if (r < 0)
                return r;
        rb = &s->rollback;
        if (!rb->set || rb->acknowledged) {
                *ret_version = strdup("");
                return *ret_version ? 0 : -ENOMEM;
        }
        version = strdup(rb->version ?: "(unknown)");
        if (!version)
                return -ENOMEM;
        rb->acknowledged = true;
        r = state_save(m->config->data_dir, s, &err);
        if (r < 0)
                return bus_error_set_upk(error, &err);
        log_fields(LOG_LEVEL_NOTICE, &(LogFields){ .version = rb->version, .slot = rb->slot },
                   "the rollback of version %s on slot %s is acknowledged", version, rb->slot);
        manager_refresh(m);
        *ret_version = TAKE_PTR(version);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Manager *m = userdata;

        log_msg(LOG_LEVEL_NOTICE, "received %s, stopping", strsignal((int)si->ssi_signo));
        (void)sd_notify(false, "STOPPING=1");
        m->exiting = true;
        prepare_stop(m, "the daemon's stop");
        if (m->job) {
                /* A cancelled install stops at its next block; the loop exits when the worker is joined. */
                if (job_kind(m->job) == JOB_INSTALL || job_kind(m->job) == JOB_CHECK)
                        (void)manager_cancel(m, NULL, NULL);
                return 0;
        }
        if (m->slots_job)
                return 0; /* its callers are answered first */
        return sd_event_exit(m->event, 0);
}

int manager_new(const char *config_path, bool no_reboot, Manager **ret, UpkErr *err)
{
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return upk_err_oom(err);
        m->no_reboot = no_reboot;
        m->deferred.fd = -EBADF;
        m->state = MANAGER_CONFIRMING;
        m->auto_update = true;
        r = config_load(config_path, &m->config, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->config->n_warnings; i++)
                log_msg(LOG_LEVEL_WARNING, "%s", m->config->warnings[i]);
        if (!set_string(&m->compatible, m->config->compatible) || !set_string(&m->phase, "") ||
            !set_string(&m->available_version, "") || !set_string(&m->last_error, "") ||
            !set_string(&m->booted_slot, "") || !set_string(&m->current_version, "") ||
            !set_string(&m->rb_version, "") || !set_string(&m->rb_slot, "") ||
            !set_string(&m->rb_reason, ""))
                return upk_err_oom(err);

        /* Blocked before any thread exists, so that only the loop's signalfd sees them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot block SIGTERM: %m");
        r = sd_event_default(&m->event);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create the event loop: %m");
        if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m)) < 0 ||
            (r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m)) < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot watch SIGTERM and SIGINT: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot enable the watchdog: %m");
        r = source_new(m->config, &m->source, err);
        if (r < 0)
                return r;
        r = fetch_engine_new(m->event, &m->fetch_engine, err);
        if (r < 0)
                return r;
        manager_setup_schedule(m);
        *ret = TAKE_PTR(m);
        return 0;
}

/* The start's first job has read the booted slot: confirm, unless an install waits for its reboot. */
static void finish_probe(Manager *m)
{
        JobResult jr = {};
        int r;

        (void)job_join(m->job, &jr, NULL);
        m->job = job_free(m->job);
        m->boot_probed = true;
        if (set_string(&m->booted_slot, jr.booted))
                bus_emit_changed(m, "BootedSlot", NULL);
        manager_refresh(m);
        if (m->exiting) {
                job_result_done(&jr);
                return;
        }
        if (jr.reboot_pending) {
                log_msg(LOG_LEVEL_INFO, "an installed update waits for the reboot; nothing to confirm yet");
                manager_set_state(m, MANAGER_PENDING_REBOOT);
                rollback_warn(m);
                (void)sd_notify(false, "READY=1");
                notify_status(m);
                job_result_done(&jr);
                return;
        }
        job_result_done(&jr);
        r = start_job(m, &(JobParams){ .kind = JOB_CONFIRM });
        if (r < 0) {
                log_errno(LOG_LEVEL_ERROR, r, "cannot start the confirmation: %m");
                (void)sd_event_exit(m->event, r);
                return;
        }
        log_fields(LOG_LEVEL_INFO, &(LogFields){ .phase = "health-checks" }, "state: confirming");
        manager_set_phase(m, "health-checks");
}

int manager_start(Manager *m)
{
        int r;

        manager_refresh(m);
        r = sd_bus_open_system_with_description(&m->bus, "upkeepd");
        if (r < 0) {
                log_errno(LOG_LEVEL_ERROR, r, "cannot connect to the system bus: %m");
                return r;
        }
        (void)sd_bus_set_exit_on_disconnect(m->bus, true);
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = bus_add_object(m);
        if (r < 0) {
                log_errno(LOG_LEVEL_ERROR, r, "cannot add the bus object: %m");
                return r;
        }
        r = sd_bus_request_name(m->bus, UPKEEP_BUS_NAME, 0);
        if (r < 0) {
                log_errno(LOG_LEVEL_ERROR, r, "cannot own the bus name %s: %m", UPKEEP_BUS_NAME);
                return r;
        }

        support_warn(m);
        r = sd_event_add_time_relative(m->event, &m->support_timer, CLOCK_BOOTTIME,
                                       SUPPORT_WARNING_INTERVAL_USEC, 3600ULL * 1000000, on_support_timer,
                                       m);
        if (r < 0)
                return r;

        if (source_get_type(m->source) != SOURCE_NONE)
                schedule_check(m, schedule_first_delay(&m->schedule, random_u64()));

        /* The booted slot, read once in the worker (the boot backend's tools may take seconds); the
         * confirmation follows (finish_probe). */
        r = start_job(m, &(JobParams){ .kind = JOB_PROBE });
        if (r < 0) {
                log_errno(LOG_LEVEL_ERROR, r, "cannot start reading the booted slot: %m");
                return r;
        }
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
        if (m->stream)
                source_stream_cancel(m->stream);
        m->prepare_job = job_free(m->prepare_job);
        m->job = job_free(m->job);
        m->job_call = sd_bus_message_unref(m->job_call);
        m->slots_job = job_free(m->slots_job);
        fail_slots_calls(m, m->n_slots_calls, -ESHUTDOWN, "the daemon is stopping");
        m->stream = source_stream_free(m->stream);
        reply_check_calls(
                m, NULL,
                &(UpkErr){ .kind = UPK_ERR_IO, .code = -ESHUTDOWN, .msg = "the daemon is stopping" });
        sd_event_source_disable_unref(m->check_timer);
        sd_event_source_disable_unref(m->hold_timer);
        sd_event_source_disable_unref(m->watch_timer);
        offer_free(m->offer);
        source_free(m->source); /* first: its report in flight is a fetch on the engine */
        fetch_engine_free(m->fetch_engine);
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
        free(m->rb_version);
        free(m->rb_slot);
        free(m->rb_reason);
        free(m->job_source);
        free(m->job_action);
        deferred_done(m);
        free(m);
        return NULL;
}
