/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The long work (an install, the boot-time confirmation with its health checks, a check) and every
 * call into the boot backend (its tools may take seconds) run in a worker thread so that the bus never
 * waits for them. The worker and the event loop share only the Job below:
 * the worker writes progress and the result under the mutex and wakes the loop through an eventfd
 * (at each phase change, at most every JOB_WAKE_INTERVAL_USEC and only when the percentage moved, and
 * at the end); the loop reads them. Cancel sets an atomic flag the installer polls between blocks. */

#include <systemd/sd-event.h>

#include "install.h"
#include "source.h"

#define JOB_WAKE_INTERVAL_USEC (100 * 1000ULL) /* at most ~10 progress updates a second */

typedef enum JobKind {
        JOB_INSTALL, /* from a file (path) or a stream (read, read_userdata) */
        JOB_CONFIRM,
        JOB_CHECK,          /* source_check() */
        JOB_PROBE,          /* at start: the booted slot, and whether an install waits for its reboot */
        JOB_SLOTS,          /* the boot backend's state of every configured slot (GetSlots) */
        JOB_ROLLBACK,       /* install_rollback() */
        JOB_MARK_GOOD,      /* install_mark_good() */
        JOB_CANCEL_PENDING, /* install_cancel_pending() */
        /* install_delta_prepare_tables(): in the background, at the lowest CPU and I/O priority (that
         * thread and the hashing threads it starts only); in a test build UPKEEP_TEST_PREPARE_DELAY_MS
         * holds it that long before each 1 MiB read (a cancel ends the wait at once) */
        JOB_PREPARE_DELTA,
        _JOB_KIND_MAX,
        _JOB_KIND_INVALID = -EINVAL,
} JobKind;

typedef struct Job Job;

/* In the loop's thread: something changed (progress, or the job finished). */
typedef void (*JobNotifyFunc)(Job *j, void *userdata);

typedef struct JobSnapshot {
        InstallPhase phase; /* _INSTALL_PHASE_INVALID before the first report */
        uint64_t done, total;
        bool finished;
} JobSnapshot;

typedef struct JobParams {
        JobKind kind;
        const char *path;    /* JOB_INSTALL from a file */
        BundleNextFunc next; /* JOB_INSTALL from a stream; its userdata must outlive the job */
        void *next_userdata;
        bool allow_downgrade;
        const char *action; /* JOB_INSTALL: the update server's action it carries out, for the history */
        Source *source;     /* JOB_CHECK: used by the worker only while the job runs */
        const char *current_version;
        bool want_manifest;
        const char *booted; /* JOB_PREPARE_DELTA: the booted slot's bootname */
        /* JOB_INSTALL as a delta (install_bundle_delta()) from this URL, instead of `next`/`path`; with
         * TUF, the manifest's SHA-256 the repository signed (32 bytes, or NULL) */
        const char *delta_url;
        const uint8_t *delta_manifest_sha256;
        const char *delta_name; /* the TUF target's or hawkBit artifact's name, for messages */
        /* hawkBit: the request headers of its downloads (the credentials: copied, and erased when the
         * job is freed) and the artifact's announced size (0: none), which the file's must equal */
        const char *const *delta_headers;
        uint64_t delta_size;
} JobParams;

/* What a finished job hands out; the member of its kind is filled (the others stay empty). */
typedef struct JobResult {
        InstallResult install;  /* JOB_INSTALL */
        ConfirmResult confirm;  /* JOB_CONFIRM */
        Offer *offer;           /* JOB_CHECK: NULL when up to date */
        char *booted;           /* JOB_PROBE: NULL when it cannot be told */
        bool reboot_pending;    /* JOB_PROBE, and after JOB_ROLLBACK, JOB_MARK_GOOD, JOB_CANCEL_PENDING:
                                 * the state's pending slot is the next boot's, not the booted */
        SlotState *slot_states; /* JOB_SLOTS: by config slot index, _SLOT_STATE_INVALID when unknown */
        size_t n_slot_states;
        char *slot;              /* JOB_ROLLBACK: the slot that is primary again */
        bool cancelled;          /* JOB_ROLLBACK: it cancelled an update that waited for its reboot */
        char *cancelled_version; /* JOB_CANCEL_PENDING: the version not taken (may be NULL) */
        /* JOB_INSTALL as a delta: what it took from where; delta_fallback when it could not be done (the
         * error says why) and the whole bundle should be installed instead */
        InstallDeltaStats delta;
        unsigned delta_requests;
        uint64_t delta_wire_bytes;
        bool delta_fallback;
        InstallPrepareStats prepare; /* JOB_PREPARE_DELTA */
} JobResult;

void job_result_done(JobResult *r);

int job_start(sd_event *e, const Config *c, const JobParams *p, JobNotifyFunc notify, void *userdata,
              Job **ret);
void job_cancel(Job *j);
bool job_is_cancelled(Job *j);
JobKind job_kind(Job *j);
/* What a job of kind `k` does, for messages: "the install", "the check for updates"... */
const char *job_kind_what(JobKind k);
void job_snapshot(Job *j, JobSnapshot *ret);
/* Once finished: join the worker and hand out its result. `ret` (may be NULL) is filled whatever the
 * result (the caller calls job_result_done()); returns the operation's return value. On failure
 * `ret_err` always has a message (upk_err_ensure()). */
int job_join(Job *j, JobResult *ret, UpkErr *ret_err);
/* Cancels a running job, waits for the worker and frees everything. */
Job *job_free(Job *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(Job *, job_free);
