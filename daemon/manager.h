/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The service: its state machine, the properties the bus serves (fields read by offsetof in bus.c; only
 * the event loop's thread touches them), and the one job that may run at a time (job.h).
 *
 *   start:   confirming: the booted slot read once (JOB_PROBE), then install_confirm, both in the worker
 *            → idle | error (or pending-reboot when an install waits for its reboot: nothing to confirm)
 *   Install: idle | error | pending-reboot → installing → pending-reboot | error
 *            (downloading instead of installing while the bundle's bytes come from the network)
 *   Check:   idle | error | pending-reboot → checking → idle (or back to pending-reboot) | error;
 *            then, per policy (schedule.h), an automatic install of the offered update.
 *   (after an update was rolled back, by its health check or by the bootloader, the start ends in idle:
 *   RolledBack says what happened until AcknowledgeRollback or a confirmed update)
 *   Rollback, MarkGood: a job each (the State does not change; other jobs are refused as busy
 *            meanwhile); the call is answered when the job ends.
 *   after confirming (or MarkGood) the booted slot good, while idle with [install] delta on: the booted
 *            slots' block tables computed in the background (JOB_PREPARE_DELTA); any job that starts stops
 *            it first (cancelled and joined), the State does not show it.
 * The boot backend's tools may take seconds: the loop never calls them. The booted slot is read once
 * at the start and cached (BootedSlot, and CurrentVersion which depends on it, are empty until then);
 * GetSlots is answered when a read in its own worker thread ends (it runs beside any job).
 * Checks run on a timer (first soon after the start, then every poll interval plus jitter, backing off
 * after failures) and on the Check method. In a test build (HAVE_TEST_HOOKS, tests/README) tests may shorten
 * the timer with UPKEEP_TEST_FIRST_CHECK_SEC, UPKEEP_TEST_POLL_INTERVAL_SEC and UPKEEP_TEST_BACKOFF_SEC
 * (read with secure_getenv). */

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-api.h"
#include "conf.h"
#include "fetch.h"
#include "job.h"
#include "schedule.h"
#include "source.h"

#define SUPPORT_WARNING_INTERVAL_USEC (24ULL * 3600 * 1000000) /* the "support ended" warning: daily */
#define CHECK_CALLS_MAX               64  /* Check calls waiting for the same running check */
#define DECLINE_REASON_MAX            400 /* bytes of Decline's reason */
#define SLOTS_CALLS_MAX               64  /* GetSlots calls waiting for the boot backend */

typedef enum ManagerState {
        MANAGER_IDLE,
        MANAGER_CHECKING,
        MANAGER_DOWNLOADING,
        MANAGER_INSTALLING,
        MANAGER_PENDING_REBOOT,
        MANAGER_CONFIRMING,
        MANAGER_ERROR,
        _MANAGER_STATE_MAX,
        _MANAGER_STATE_INVALID = -EINVAL,
} ManagerState;

typedef struct AuthQuery AuthQuery;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        Config *config;
        bool no_reboot;

        /* Properties (upkeep-dbus(7)). Strings are never NULL once manager_start() ran. */
        ManagerState state;
        char *phase;
        uint64_t progress_done, progress_total;
        char *current_version;
        char *available_version;
        char *compatible;
        char *booted_slot;
        bool boot_probed; /* booted_slot was read (JOB_PROBE at the start) */
        uint64_t last_check;
        char *last_error;
        int auto_update; /* sd-bus booleans are int */
        char *support_end;
        /* RolledBack (ssst): the state's rollback record until it is acknowledged ("", "", "", 0 when
         * none); the reason without the paths of root's files, as LastError. */
        char *rb_version, *rb_slot, *rb_reason;
        uint64_t rb_time;

        Job *job;
        sd_bus_message *job_call; /* the Rollback or MarkGood call, answered when its job ends */
        char *job_source;         /* the bundle being installed */
        char *job_action;         /* its update server's action (hawkBit), or NULL */
        bool consent_check;       /* the running check sends the user's answer to a consent */
        bool consent_confirm;     /* ... which is yes */
        int consent_needed;       /* ConsentNeeded (b): the offer waits for the user's consent */
        bool job_automatic;       /* the install was started by the policy, not by a caller */
        bool job_offer;           /* the install is of the source's offer (the source hears of it) */
        bool job_allow_downgrade;
        bool no_delta; /* the next install downloads the whole bundle (a delta fell back) */
        /* LastDelta: the last install done as a delta since the start (zeros: none) */
        uint64_t delta_reused, delta_total, delta_downloaded;
        unsigned delta_requests;
        SourceStream *stream; /* the running install's download, if any */
        ManagerState state_before_check;
        /* An Install that came while a check ran: the check is cancelled, and this install starts when
         * its worker has ended (finish_check). */
        struct {
                char *source; /* NULL: none waits */
                int fd;
                bool allow_downgrade;
        } deferred;

        Source *source;
        FetchEngine *fetch_engine;
        Schedule schedule;
        sd_event_source *check_timer; /* the next scheduled check */
        sd_event_source *hold_timer;  /* a held update: decide again when the hold ends */
        sd_event_source
                *watch_timer; /* the install of an offer: asks the source every second for a cancel */
        bool check_due;       /* the timer fired while another job ran */
        bool hold_due;        /* the hold timer fired while a job ran */
        Offer *offer;         /* the update the source offers (AvailableVersion) */
        sd_bus_message *check_calls[CHECK_CALLS_MAX]; /* Check calls answered when the check ends */
        size_t n_check_calls;
        /* GetSlots: one read of the boot backend at a time, beside `job`. The first n_slots_served calls
         * are answered by the running read, the others (they came after it started) by the next. */
        Job *slots_job;
        sd_bus_message *slots_calls[SLOTS_CALLS_MAX];
        size_t n_slots_calls, n_slots_served;
        /* The booted slots' block tables for delta updates (JOB_PREPARE_DELTA), computed in the background
         * once the booted slot is confirmed good: beside nothing (the State stays idle; every job stops it
         * first) and again after a job that stopped it, until it has run to its end once. */
        Job *prepare_job;
        bool prepare_due;
        bool exiting; /* SIGTERM came: exit once the job is gone */
        sd_event_source *support_timer;
        AuthQuery *auth_queries; /* polkit checks in flight (polkit.c) */
} Manager;

int manager_new(const char *config_path, bool no_reboot, Manager **ret, UpkErr *err);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Connect the bus, take the name, start the confirmation; READY=1 follows when it is done. */
int manager_start(Manager *m);
int manager_run(Manager *m);

/* The bus-facing operations (access was checked by the caller). They return -errno and fill `error`. */
/* `source`: an absolute path of a regular file, an http(s) URL, "" for the offered update
 * (AvailableVersion), or "-" for the bytes of `fd` (the message's descriptor, duplicated here; a pipe
 * the caller owns). `fd` < 0 when the call carried none. */
int manager_install(Manager *m, const char *source, int fd, bool allow_downgrade, sd_bus_error *error);
/* Decline (and Install of an offer that needs consent): the user's answer, sent by a check. */
int manager_consent(Manager *m, bool confirm, const char *reason, sd_bus_error *error);
/* An Install with a source ("" excepted) that comes while a check runs cancels the check and starts
 * when it has ended (at once: the check's downloads stop on the cancel); the call returns 0 then. */
/* Start a check (or join the running one); `call` is answered with the available version when it ends.
 * Returns 0, or -errno with `error` set (no source, busy). */
int manager_check(Manager *m, sd_bus_message *call, sd_bus_error *error);
/* Cancel: the running install or check stops (returns 0: answer now); or, while an update waits for its
 * reboot, a job cancels that update and `call` (may be NULL) is answered when it ends (returns 1). -errno
 * with `error` set: nothing to cancel (NotRunning), busy. */
int manager_cancel(Manager *m, sd_bus_message *call, sd_bus_error *error);
/* Rollback and MarkGood start a job; `call` is answered when it ends (with the slot that is primary again,
 * or nothing). Returns 0, or -errno with `error` set (busy: a job runs, also another Rollback). */
int manager_rollback(Manager *m, sd_bus_message *call, sd_bus_error *error);
int manager_mark_good(Manager *m, sd_bus_message *call, sd_bus_error *error);
/* GetSlots: `call` is answered (bus_reply_slots) when a read of the boot backend that started after it
 * ends. Returns 0, or -errno with `error` set (too many callers wait). */
int manager_get_slots(Manager *m, sd_bus_message *call, sd_bus_error *error);
int manager_postpone(Manager *m, uint64_t until, sd_bus_error *error);
int manager_set_auto_update(Manager *m, bool enable, sd_bus_error *error);
/* AcknowledgeRollback: the owner has seen the rollback; RolledBack is empty from now on (automatic
 * installs still leave that version out). The version acknowledged in *ret_version ("" when there was
 * nothing to acknowledge; the caller frees it). */
int manager_acknowledge_rollback(Manager *m, char **ret_version, sd_bus_error *error);

const char *manager_state_to_string(ManagerState s);
ManagerState manager_state_from_string(const char *s);
