/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <time.h>

#include "job.h"

struct Job {
        /* set before the worker starts, read-only afterwards */
        JobKind kind;
        const Config *config;
        char *path;
        BundleNextFunc next;
        void *next_userdata;
        bool allow_downgrade;
        Source *update_source;
        char *current_version;
        bool want_manifest;
        JobNotifyFunc notify;
        void *userdata;
        int efd;
        sd_event_source *source;
        pthread_t thread;
        bool started, joined;

        atomic_bool cancel;

        pthread_mutex_t lock; /* guards everything below */
        JobSnapshot snap;
        int last_wake_percent;
        uint64_t last_wake_usec;
        int result;
        UpkErr err;
        InstallResult install;
        ConfirmResult confirm;
        Offer *offer;
};

static uint64_t monotonic_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void job_wake(Job *j)
{
        (void)eventfd_write(j->efd, 1);
}

/* Worker thread: called at each phase change and after every block. */
static void on_progress(void *userdata, InstallPhase phase, uint64_t done, uint64_t total)
{
        Job *j = userdata;
        int percent = total ? (int)(done * 100 / total) : 0;
        uint64_t now = monotonic_usec();
        bool wake;

        pthread_mutex_lock(&j->lock);
        wake = phase != j->snap.phase ||
               (percent != j->last_wake_percent && now - j->last_wake_usec >= JOB_WAKE_INTERVAL_USEC);
        j->snap.phase = phase;
        j->snap.done = done;
        j->snap.total = total;
        if (wake) {
                j->last_wake_percent = percent;
                j->last_wake_usec = now;
        }
        pthread_mutex_unlock(&j->lock);
        if (wake)
                job_wake(j);
}

static bool on_cancelled(void *userdata)
{
        Job *j = userdata;
        return atomic_load(&j->cancel);
}

#define JOB_NICE_INCREMENT 10

static void *job_thread(void *userdata)
{
        Job *j = userdata;
        InstallOptions o = { .allow_downgrade = j->allow_downgrade,
                             .progress = on_progress,
                             .cancelled = on_cancelled,
                             .userdata = j };
        InstallResult install = {};
        ConfirmResult confirm = {};
        Offer *offer = NULL;
        UpkErr err = {};
        int r = -EINVAL;

        /* The bus comes first: this thread, and the threads it starts (the installer's writer and
         * read-ahead), yield the CPU to the event loop whenever it has something to do. */
        thread_lower_priority(JOB_NICE_INCREMENT);

        switch (j->kind) {
        case JOB_INSTALL:
                if (j->next)
                        r = install_bundle_next(j->config, j->next, j->next_userdata, &o, &install, &err);
                else
                        r = install_bundle_path(j->config, j->path, &o, &install, &err);
                break;
        case JOB_CONFIRM:
                r = install_confirm(j->config, &confirm, &err);
                break;
        case JOB_CHECK:
                r = source_check(j->update_source, j->current_version, j->want_manifest, &offer, &err);
                break;
        case _JOB_KIND_MAX:
        case _JOB_KIND_INVALID:
                break;
        }

        pthread_mutex_lock(&j->lock);
        j->result = r;
        j->err = err;
        j->install = install;
        j->confirm = confirm;
        j->offer = offer;
        j->snap.finished = true;
        pthread_mutex_unlock(&j->lock);
        job_wake(j);
        return NULL;
}

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Job *j = userdata;
        eventfd_t v;

        (void)eventfd_read(fd, &v);
        if (j->notify)
                j->notify(j, j->userdata);
        return 0;
}

int job_start(sd_event *e, const Config *c, const JobParams *p, JobNotifyFunc notify, void *userdata,
              Job **ret)
{
        _cleanup_(job_freep) Job *j = NULL;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        pthread_mutex_init(&j->lock, NULL);
        j->kind = p->kind;
        j->config = c;
        j->allow_downgrade = p->allow_downgrade;
        j->next = p->next;
        j->next_userdata = p->next_userdata;
        j->update_source = p->source;
        j->want_manifest = p->want_manifest;
        j->notify = notify;
        j->userdata = userdata;
        j->snap.phase = _INSTALL_PHASE_INVALID;
        j->last_wake_percent = -1;
        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0)
                return -errno;
        if (p->path) {
                j->path = strdup(p->path);
                if (!j->path)
                        return -ENOMEM;
        }
        if (p->current_version) {
                j->current_version = strdup(p->current_version);
                if (!j->current_version)
                        return -ENOMEM;
        }
        r = sd_event_add_io(e, &j->source, j->efd, EPOLLIN, on_eventfd, j);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(j->source, "job");
        r = pthread_create(&j->thread, NULL, job_thread, j);
        if (r != 0)
                return -r;
        j->started = true;
        *ret = TAKE_PTR(j);
        return 0;
}

void job_cancel(Job *j)
{
        atomic_store(&j->cancel, true);
}

bool job_is_cancelled(Job *j)
{
        return atomic_load(&j->cancel);
}

JobKind job_kind(Job *j)
{
        return j->kind;
}

void job_snapshot(Job *j, JobSnapshot *ret)
{
        pthread_mutex_lock(&j->lock);
        *ret = j->snap;
        pthread_mutex_unlock(&j->lock);
}

static void job_wait(Job *j)
{
        if (j->started && !j->joined) {
                pthread_join(j->thread, NULL);
                j->joined = true;
        }
}

int job_join(Job *j, InstallResult *ret_install, ConfirmResult *ret_confirm, Offer **ret_offer,
             UpkErr *ret_err)
{
        job_wait(j);
        if (ret_install) {
                *ret_install = j->install;
                j->install = (InstallResult){};
        }
        if (ret_confirm) {
                *ret_confirm = j->confirm;
                j->confirm = (ConfirmResult){};
        }
        if (ret_offer)
                *ret_offer = TAKE_PTR(j->offer);
        if (ret_err)
                *ret_err = j->err;
        return j->result;
}

Job *job_free(Job *j)
{
        if (!j)
                return NULL;
        job_cancel(j);
        job_wait(j);
        sd_event_source_disable_unref(j->source);
        safe_close(j->efd);
        install_result_done(&j->install);
        confirm_result_done(&j->confirm);
        offer_free(j->offer);
        pthread_mutex_destroy(&j->lock);
        free(j->path);
        free(j->current_version);
        free(j);
        return NULL;
}
