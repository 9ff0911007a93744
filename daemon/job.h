/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The long work (an install, the boot-time confirmation with its health checks) runs in a worker
 * thread so that the bus never waits for it. The worker and the event loop share only the Job below:
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
        JOB_CHECK, /* source_check() */
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
        Source *source; /* JOB_CHECK: used by the worker only while the job runs */
        const char *current_version;
        bool want_manifest;
} JobParams;

int job_start(sd_event *e, const Config *c, const JobParams *p, JobNotifyFunc notify, void *userdata,
              Job **ret);
void job_cancel(Job *j);
bool job_is_cancelled(Job *j);
JobKind job_kind(Job *j);
void job_snapshot(Job *j, JobSnapshot *ret);
/* Once finished: join the worker and hand out its result. `ret_install` / `ret_confirm` / `ret_offer` (by
 * kind) are filled whatever the result (the caller calls their _done() or frees); returns the
 * operation's return value. */
int job_join(Job *j, InstallResult *ret_install, ConfirmResult *ret_confirm, Offer **ret_offer,
             UpkErr *ret_err);
/* Cancels a running job, waits for the worker and frees everything. */
Job *job_free(Job *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(Job *, job_free);
