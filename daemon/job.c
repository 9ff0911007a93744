/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <linux/ioprio.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "job.h"

#include "delta-net.h"
#include "strv.h"

struct Job {
        /* set before the worker starts, read-only afterwards */
        JobKind kind;
        const Config *config;
        char *path;
        char *action;
        BundleNextFunc next;
        void *next_userdata;
        bool allow_downgrade;
        Source *update_source;
        char *current_version;
        bool want_manifest;
        char *booted;
        char *delta_url;
        char *delta_name;
        uint8_t delta_manifest_sha256[32];
        bool has_delta_manifest_sha256;
        char **delta_headers; /* hold a secret: erased when freed */
        uint64_t delta_size;
        int cancel_efd; /* readable once cancelled: ends a delta's blocking downloads */
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
        JobResult res;
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

#define JOB_NICE_INCREMENT  10
#define JOB_NICE_BACKGROUND 19 /* the lowest */

/* The background job's thread (and the threads it starts, which inherit both): the CPU when nothing
 * else wants it, the disk when nothing else uses it. Best effort: a system that refuses keeps it at the
 * job's usual priority. */
static void thread_background_priority(void)
{
        pid_t tid = gettid();

        (void)setpriority(PRIO_PROCESS, (id_t)tid, JOB_NICE_BACKGROUND);
        (void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0));
}

/* JOB_PREPARE_DELTA's cancel check, before each 1 MiB read of a slot (from several threads). */
static bool on_prepare_cancelled(void *userdata)
{
        Job *j = userdata;

#if HAVE_TEST_HOOKS
        const char *v = secure_getenv("UPKEEP_TEST_PREPARE_DELAY_MS");
        uint64_t ms;

        /* A test slows the hashing down to act while it runs; the cancel's eventfd ends the wait. */
        if (v && safe_atou64(v, &ms) >= 0 && ms > 0 && ms <= 60000 && !atomic_load(&j->cancel))
                (void)poll(&(struct pollfd){ .fd = j->cancel_efd, .events = POLLIN }, 1, (int)ms);
#endif
        return atomic_load(&j->cancel);
}

/* The booted slot, and whether an install waits for its reboot: the booted slot is not the pending one
 * and the bootloader takes the pending one next (the daemon restarted without a reboot). A pending
 * update the state lost is taken from the boot backend (written back by the next operation). */
static int probe_boot(const Config *c, JobResult *res)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_free_ char *primary = NULL;

        if (install_open_boot(c, &boot, NULL) < 0 || install_find_booted(c, boot, &res->booted, NULL) < 0)
                return 0; /* BootedSlot stays empty; the confirmation reports the failure */
        if (state_load(c->data_dir, &s, NULL) < 0 || install_recover_pending(c, boot, res->booted, s) < 0 ||
            !s->pending || !s->pending_slot || streq(res->booted, s->pending_slot))
                return 0;
        res->reboot_pending = boot_get_primary(boot, &primary, NULL) >= 0 && streq(primary, s->pending_slot);
        return 0;
}

/* The state of every configured slot; unknown (_SLOT_STATE_INVALID) where the backend cannot say.
 * Slots of several classes share a bootname: each bootname is asked once. */
static int read_slot_states(const Config *c, JobResult *res, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;

        res->slot_states = calloc(c->n_slots ?: 1, sizeof(SlotState));
        if (!res->slot_states)
                return upk_err_oom(err);
        res->n_slot_states = c->n_slots;
        if (install_open_boot(c, &boot, NULL) < 0)
                boot = NULL;
        for (size_t i = 0; i < c->n_slots; i++) {
                SlotState *st = &res->slot_states[i];
                size_t k;

                for (k = 0; k < i && !streq(c->slots[k].bootname, c->slots[i].bootname); k++)
                        ;
                if (k < i)
                        *st = res->slot_states[k];
                else if (!boot || boot_get_state(boot, c->slots[i].bootname, st, NULL) < 0)
                        *st = _SLOT_STATE_INVALID;
        }
        return 0;
}

static int job_install_delta(Job *j, const InstallOptions *o, JobResult *res, UpkErr *err)
{
        DeltaNet n;
        InstallDeltaIo io;
        int r;

        delta_net_init(&n, j->config, j->delta_url, j->cancel_efd, &io);
        if (j->has_delta_manifest_sha256)
                io.manifest_sha256 = j->delta_manifest_sha256;
        io.name = j->delta_name;
        n.fo.headers = (const char *const *)j->delta_headers;
        n.expect_total = j->delta_size;
        n.name = j->delta_name;
        r = install_bundle_delta(j->config, &io, o, &res->install, &res->delta, err);
        res->delta_requests = n.requests;
        res->delta_wire_bytes = n.wire_bytes;
        if (r < 0 && !job_is_cancelled(j) && install_delta_falls_back(r, err))
                res->delta_fallback = true;
        return r;
}

static void *job_thread(void *userdata)
{
        Job *j = userdata;
        InstallOptions o = { .allow_downgrade = j->allow_downgrade,
                             .progress = on_progress,
                             .cancelled = on_cancelled,
                             .userdata = j,
                             .regular_file_only = true,
                             .action = j->action };
        JobResult res = {};
        UpkErr err = {};
        int r = -EINVAL;

        /* The bus comes first: this thread, and the threads it starts (the installer's writer and
         * read-ahead), yield the CPU to the event loop whenever it has something to do. */
        if (j->kind == JOB_PREPARE_DELTA)
                thread_background_priority();
        else
                thread_lower_priority(JOB_NICE_INCREMENT);

        switch (j->kind) {
        case JOB_INSTALL:
                if (j->delta_url)
                        r = job_install_delta(j, &o, &res, &err);
                else if (j->next)
                        r = install_bundle_next(j->config, j->next, j->next_userdata, &o, &res.install,
                                                &err);
                else
                        r = install_bundle_path(j->config, j->path, &o, &res.install, &err);
                break;
        case JOB_CONFIRM:
                r = install_confirm(j->config, &res.confirm, &err);
                break;
        case JOB_CHECK:
                r = source_check(j->update_source, j->current_version, j->want_manifest, &res.offer, &err);
                break;
        case JOB_PROBE:
                r = probe_boot(j->config, &res);
                break;
        case JOB_SLOTS:
                r = read_slot_states(j->config, &res, &err);
                break;
        case JOB_ROLLBACK:
                r = install_rollback(j->config, &res.slot, &res.cancelled, &err);
                (void)probe_boot(j->config, &res); /* the State afterwards, whatever the result */
                break;
        case JOB_MARK_GOOD:
                r = install_mark_good(j->config, &err);
                (void)probe_boot(j->config, &res);
                break;
        case JOB_CANCEL_PENDING:
                r = install_cancel_pending(j->config, &res.cancelled_version, &err);
                (void)probe_boot(j->config, &res);
                break;
        case JOB_PREPARE_DELTA:
                r = install_delta_prepare_tables(j->config, j->booted, on_prepare_cancelled, j, &res.prepare,
                                                 &err);
                break;
        case _JOB_KIND_MAX:
        case _JOB_KIND_INVALID:
                break;
        }

        pthread_mutex_lock(&j->lock);
        j->result = r;
        j->err = err;
        j->res = res;
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
        j->cancel_efd = -EBADF;
        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0)
                return -errno;
        if (p->path) {
                j->path = strdup(p->path);
                if (!j->path)
                        return -ENOMEM;
        }
        if (p->action) {
                j->action = strdup(p->action);
                if (!j->action)
                        return -ENOMEM;
        }
        if (p->current_version) {
                j->current_version = strdup(p->current_version);
                if (!j->current_version)
                        return -ENOMEM;
        }
        if (p->booted) {
                j->booted = strdup(p->booted);
                if (!j->booted)
                        return -ENOMEM;
        }
        if (p->delta_url) {
                j->delta_url = strdup(p->delta_url);
                if (!j->delta_url)
                        return -ENOMEM;
        }
        if (p->delta_name) {
                j->delta_name = strdup(p->delta_name);
                if (!j->delta_name)
                        return -ENOMEM;
        }
        if (strv_copy(p->delta_headers, &j->delta_headers) < 0)
                return -ENOMEM;
        j->delta_size = p->delta_size;
        if (p->delta_manifest_sha256) {
                memcpy(j->delta_manifest_sha256, p->delta_manifest_sha256, 32);
                j->has_delta_manifest_sha256 = true;
        }
        j->cancel_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->cancel_efd < 0)
                return -errno;
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
        if (j->cancel_efd >= 0)
                (void)eventfd_write(j->cancel_efd, 1);
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

void job_result_done(JobResult *r)
{
        install_result_done(&r->install);
        confirm_result_done(&r->confirm);
        r->offer = offer_free(r->offer);
        free(r->booted);
        free(r->slot_states);
        free(r->slot);
        free(r->cancelled_version);
        *r = (JobResult){};
}

/* What a job does, for the message of a failure that came back without one. */
static const char *const job_what[_JOB_KIND_MAX] = {
        [JOB_INSTALL] = "the install",
        [JOB_CONFIRM] = "the confirmation of the booted slot",
        [JOB_CHECK] = "the check for updates",
        [JOB_PROBE] = "finding the booted slot",
        [JOB_SLOTS] = "reading the slots from the boot backend",
        [JOB_ROLLBACK] = "the rollback",
        [JOB_MARK_GOOD] = "marking the booted slot good",
        [JOB_CANCEL_PENDING] = "cancelling the update that waits for its reboot",
        [JOB_PREPARE_DELTA] = "computing the booted slot's block tables",
};

const char *job_kind_what(JobKind k)
{
        return string_table_get(job_what, _JOB_KIND_MAX, k) ?: "a job";
}

int job_join(Job *j, JobResult *ret, UpkErr *ret_err)
{
        job_wait(j);
        if (ret) {
                *ret = j->res;
                j->res = (JobResult){};
        }
        if (ret_err) {
                *ret_err = j->err;
                /* Every failure reaches a log line, LastError or a bus reply with a message. */
                if (j->result < 0)
                        (void)upk_err_ensure(ret_err, j->result, "%s failed", job_kind_what(j->kind));
        }
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
        safe_close(j->cancel_efd);
        free(j->delta_url);
        free(j->delta_name);
        strv_free_erase(j->delta_headers);
        job_result_done(&j->res);
        pthread_mutex_destroy(&j->lock);
        free(j->path);
        free(j->action);
        free(j->current_version);
        free(j->booted);
        free(j);
        return NULL;
}
