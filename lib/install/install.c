/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "install.h"

#include "handler.h"
#include "hexdecoct.h"
#include "install-internal.h"
#include "version.h"
#include "writer.h"

void install_result_done(InstallResult *r)
{
        free(r->version);
        free(r->slot);
        *r = (InstallResult){};
}

static void report(const InstallOptions *o, InstallPhase phase, uint64_t done, uint64_t total)
{
        if (o && o->progress)
                o->progress(o->userdata, phase, done, total);
}

typedef struct Job {
        const Config *c;
        const InstallOptions *o;
        Bundle *bundle;
        const Manifest *m;
        BootBackend *boot;
        UpkState *state;
        char *booted;
        char *current;
        const char *target; /* bootname */
        Handler *handlers[MANIFEST_PAYLOADS_MAX];
        const SlotConfig *slots[MANIFEST_PAYLOADS_MAX];
        uint64_t total, done;
} Job;

static void job_done(Job *j)
{
        for (size_t i = 0; i < MANIFEST_PAYLOADS_MAX; i++)
                handler_free(j->handlers[i]);
        bundle_free(j->bundle);
        boot_backend_free(j->boot);
        state_free(j->state);
        free(j->booted);
        free(j->current);
}

static int check_versions(Job *j, UpkErr *err)
{
        const Manifest *m = j->m;
        bool downgrade_ok = j->c->allow_downgrade && j->o && j->o->allow_downgrade;
        Version current, floor;

        if (version_parse(j->current, &current) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "the installed version \"%s\" is not a semantic version", j->current);
        if (m->min_version_str && version_compare(&current, &m->min_version) < 0)
                return upk_err(err, UPK_ERR_COMPATIBLE, -EPERM,
                               "not compatible: version %s needs at least version %s installed, this device "
                               "runs %s",
                               m->version_str, m->min_version_str, j->current);
        /* Once confirmed it is the floor: a number at its maximum could never be raised past again. */
        if (m->version.major == UINT64_MAX || m->version.minor == UINT64_MAX ||
            m->version.patch == UINT64_MAX)
                return upk_err(err, UPK_ERR_DOWNGRADE, -ERANGE,
                               "version %s is not accepted: a number of %" PRIu64
                               " (2^64-1) could never be raised, so no later update could follow it",
                               m->version_str, UINT64_MAX);
        if (version_compare(&m->version, &current) <= 0 && !downgrade_ok)
                return upk_err(err, UPK_ERR_DOWNGRADE, -EPERM,
                               "downgrade: version %s is not newer than the installed version %s%s",
                               m->version_str, j->current,
                               j->c->allow_downgrade
                                       ? " (ask for a downgrade to install it)"
                                       : " (downgrades need allow-downgrade = yes in [policy])");
        if (j->state->version_floor && version_parse(j->state->version_floor, &floor) >= 0 &&
            version_compare(&m->version, &floor) < 0 && !downgrade_ok)
                return upk_err(err, UPK_ERR_DOWNGRADE, -EPERM,
                               "downgrade: version %s is older than %s, the highest version this device has "
                               "run; an old "
                               "signed bundle is not installed again",
                               m->version_str, j->state->version_floor);
        return 0;
}

static int plan(Job *j, UpkErr *err)
{
        const Manifest *m = j->m;
        int r;

        if (!streq(m->compatible, j->c->compatible))
                return upk_err(err, UPK_ERR_COMPATIBLE, -EPERM,
                               "not compatible: the bundle is for \"%s\", this device is \"%s\"",
                               m->compatible, j->c->compatible);
        r = check_versions(j, err);
        if (r < 0)
                return r;

        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                /* Format 1 checks a payload's sha256 only at its end: only raw into the inactive slot,
                 * which is never activated when the check fails, may see its bytes before that. */
                if (m->format < 2 && !(p->slot_class && streq(p->handler, "raw")))
                        return upk_err(
                                err, UPK_ERR_FORMAT, -EPROTONOSUPPORT,
                                "payload \"%s\": bundle format 1 would hand handler %s bytes before "
                                "their sha256 is checked; upkeep installs format 1 payloads only with "
                                "the raw handler into an A/B slot: rebuild it with updatectl bundle "
                                "create (format 2)",
                                p->name, p->handler);
                if (p->slot_class) {
                        const SlotConfig *s = install_other_slot(j->c, p->slot_class, j->booted);
                        uint64_t cap = UINT64_MAX;
                        if (!s)
                                return upk_err(err, UPK_ERR_COMPATIBLE, -ENOENT,
                                               "not compatible: payload \"%s\" is for slot class \"%s\", "
                                               "which this device "
                                               "does not have (or the booted slot %s is not one of its two)",
                                               p->name, p->slot_class, j->booted);
                        if (j->target && !streq(j->target, s->bootname))
                                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                               "slot classes disagree on the target slot");
                        j->target = s->bootname;
                        r = install_slot_capacity(s, &cap, err);
                        if (r < 0)
                                return r;
                        if (p->installed_size > cap)
                                return upk_err(err, UPK_ERR_COMPATIBLE, -EFBIG,
                                               "not compatible: payload \"%s\" is %llu bytes, slot %s.%s "
                                               "(%s) holds %llu",
                                               p->name, (unsigned long long)p->installed_size, s->class,
                                               s->name, s->device, (unsigned long long)cap);
                        j->slots[i] = s;
                } else if (p->target) {
                        r = install_check_target(j->c, p->name, p->target, err);
                        if (r < 0)
                                return r;
                }
                r = handler_open(p->handler, j->c->handlers_dir, &j->handlers[i], err);
                if (r < 0)
                        return upk_err_prefix(err, "payload \"%s\"", p->name);
                j->total += p->installed_size;
        }
        if (!j->target)
                return upk_err(
                        err, UPK_ERR_COMPATIBLE, -EINVAL,
                        "not compatible: no payload names a slot class, there is no slot to switch to");
        return 0;
}

static int write_payloads(Job *j, UpkErr *err)
{
        _cleanup_(writer_freep) Writer *w = NULL;
        uint64_t crash_at = 0;
        const ManifestPayload *p;
        char hex[65];
        size_t i = 0;
        int r;

        r = writer_new(&w);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot start the writer thread: %m");
        bundle_set_deferred_hashing(j->bundle, true);
        bundle_set_content_check(j->bundle, false); /* the checked stored bytes fix the content */
        if (install_crash_write_at(&crash_at))
                writer_crash_after(w, crash_at);

        while ((r = bundle_next_payload(j->bundle, BUNDLE_PAYLOAD_DECOMPRESSED, &p, err)) > 0) {
                const SlotConfig *s = j->slots[i];
                Handler *h = j->handlers[i];

                if (s) /* its block table would describe what is about to be overwritten */
                        install_delta_forget_slot(j->c, s);
                const void *buf;
                size_t len;

                hex_encode(p->sha256, 32, hex);
                struct upkeep_payload info = {
                        .struct_size = sizeof(info),
                        .name = p->name,
                        .handler = p->handler,
                        .slot_class = p->slot_class,
                        .slot_name = s ? s->name : NULL,
                        .destination = s ? s->device : p->target,
                        .size = p->installed_size,
                        .sha256 = hex,
                        .version = j->m->version_str,
                        .compatible = j->m->compatible,
                        .fstype = s ? s->fstype : NULL,
                };
                r = handler_begin(h, &info, err);
                if (r < 0)
                        return r;
                writer_set_handler(w, h);
                /* The writer thread copies each block while this thread hashes it, and writes while
                 * this thread reads the next. */
                while ((r = bundle_read_block(j->bundle, &buf, &len, err)) > 0) {
                        if (j->o && j->o->cancelled && j->o->cancelled(j->o->userdata))
                                return upk_err(err, UPK_ERR_IO, -ECANCELED, "cancelled");
                        if (!bundle_has_pending_hash(j->bundle)) {
                                /* Format 2 (checked before it was handed out): nothing to overlap with
                                 * the copy, so this thread copies, and goes on while the writer thread
                                 * writes. */
                                r = writer_push(w, buf, len, err);
                                if (r < 0)
                                        return r;
                                report(j->o, INSTALL_PHASE_WRITING, writer_written(w), j->total);
                                continue;
                        }
                        r = writer_lend(w, buf, len, err);
                        if (r < 0)
                                return r;
                        r = bundle_hash_pending(j->bundle, err);
                        int k = writer_release(w, err);
                        if (r < 0)
                                return r;
                        if (k < 0)
                                return k;
                        report(j->o, INSTALL_PHASE_WRITING, writer_written(w), j->total);
                }
                if (r < 0)
                        return r;
                r = writer_drain(w, err);
                if (r < 0)
                        return r;
                /* The payload's size and digest checked out, and every byte reached the handler: make
                 * it durable. */
                r = handler_finish(h, err);
                if (r < 0)
                        return r;
                install_crash_point("payload-finished");
                i++;
        }
        if (r >= 0)
                j->done = writer_written(w);
        return r;
}

static int install_job(Job *j, UpkErr *err)
{
        UpkErr ignore = {};
        int r;

        report(j->o, INSTALL_PHASE_CHECKING, 0, 0);
        r = plan(j, err);
        if (r < 0)
                return r;
        install_crash_point("checked");

        /* From here on the bootloader must never pick the target until it is complete. */
        report(j->o, INSTALL_PHASE_PREPARING, 0, j->total);
        if (j->state->pending) {
                state_clear_pending(j->state);
                r = state_save(j->c->data_dir, j->state, err);
                if (r < 0)
                        return r;
        }
        r = boot_mark_bad(j->boot, j->target, err);
        if (r < 0)
                return r;
        install_crash_point("marked-bad");

        report(j->o, INSTALL_PHASE_WRITING, 0, j->total);
        r = write_payloads(j, err);
        if (r < 0)
                goto fail;
        install_crash_point("written");

        report(j->o, INSTALL_PHASE_ACTIVATING, j->done, j->total);
        for (size_t i = 0; i < j->m->n_payloads; i++) {
                r = handler_commit(j->handlers[i], err);
                if (r < 0)
                        goto fail;
        }
        install_crash_point("committed");

        r = state_set_slot_version(j->state, j->target, j->m->version_str);
        if (r >= 0) {
                j->state->pending = true;
                j->state->pending_version = strdup(j->m->version_str);
                j->state->pending_slot = strdup(j->target);
                j->state->pending_from_slot = strdup(j->booted);
                j->state->pending_since = now_usec();
                j->state->boot_attempts = 0;
                free(j->state->support_end);
                j->state->support_end = j->m->support_end ? strdup(j->m->support_end) : NULL;
                if (!j->state->pending_version || !j->state->pending_slot || !j->state->pending_from_slot)
                        r = -ENOMEM;
        }
        if (r < 0) {
                upk_err(err, UPK_ERR_IO, r, "out of memory");
                goto fail;
        }
        r = state_save(j->c->data_dir, j->state, err);
        if (r < 0)
                goto fail;
        install_crash_point("state-saved");

        /* The one write that makes the new slot bootable, for one try. */
        r = boot_set_try(j->boot, j->target, err);
        if (r < 0)
                goto fail_pending;
        install_crash_point("activated");
        report(j->o, INSTALL_PHASE_DONE, j->done, j->total);
        return 0;

fail_pending:
        state_clear_pending(j->state);
        (void)state_set_slot_version(j->state, j->target, NULL);
        (void)state_save(j->c->data_dir, j->state, &ignore);
fail:
        for (size_t i = 0; i < j->m->n_payloads; i++)
                if (j->handlers[i])
                        handler_rollback(j->handlers[i]);
        return r;
}

int install_bundle_opened(const Config *c, Bundle *b, const InstallOptions *o, InstallResult *ret,
                          UpkErr *err)
{
        _cleanup_close_ int lock = -EBADF;
        Job j = { .c = c, .o = o, .bundle = b, .m = bundle_get_manifest(b) };
        int r;

        install_crash_point("opened");
        r = install_begin_operation(c, &lock, &j.state, err);
        if (r < 0)
                goto out;
        r = install_open_boot(c, &j.boot, err);
        if (r >= 0)
                r = install_find_booted(c, j.boot, &j.booted, err);
        if (r >= 0)
                r = install_current_version(c, j.state, j.booted, &j.current, err);
        if (r >= 0)
                r = install_job(&j, err);
        if (r < 0) {
                if (!(o && o->retried && o->retried(r, err)))
                        install_history_record_install(c, o, j.m->version_str, j.target, false,
                                                       err ? err->msg : strerror(-r));
                goto out;
        }
        install_history_record_install(c, o, j.m->version_str, j.target, true, NULL);
        ret->version = strdup(j.m->version_str);
        ret->slot = strdup(j.target);
        ret->reboot = c->reboot == REBOOT_AUTO;
        if (!ret->version || !ret->slot) {
                install_result_done(ret);
                r = upk_err_oom(err);
        }
out:
        j.bundle = NULL; /* the caller's */
        job_done(&j);
        return r;
}

static const char *file_type(mode_t mode)
{
        if (S_ISDIR(mode))
                return "a directory";
        if (S_ISFIFO(mode))
                return "a FIFO";
        if (S_ISCHR(mode))
                return "a character device";
        if (S_ISBLK(mode))
                return "a block device";
        if (S_ISSOCK(mode))
                return "a socket";
        return "not a regular file";
}

/* O_NONBLOCK: the open of a FIFO does not wait for a writer (nor the fstat() below for anything). */
static int open_regular_file(const char *path, const BundleOpenOptions *opts, Bundle **ret, UpkErr *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot open the bundle: %m");
        if (fstat(fd, &st) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot stat the bundle: %m");
        if (!S_ISREG(st.st_mode))
                return upk_err(err, UPK_ERR_IO, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
                               "%s is %s, not a regular file: the daemon reads bundles only from regular "
                               "files (\"updatectl install -\" hands it a pipe)",
                               path, file_type(st.st_mode));
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot open the bundle: %m");
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        return bundle_open_fd(fd, opts, ret, err);
}

int install_bundle_path(const Config *c, const char *path, const InstallOptions *o, InstallResult *ret,
                        UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions opts = { .keyring = c->keyring, .crl = c->crl, .allow_any_eku = c->allow_any_eku };
        int r;

        report(o, INSTALL_PHASE_VERIFYING, 0, 0);
        if (o && o->regular_file_only)
                r = open_regular_file(path, &opts, &b, err);
        else
                r = bundle_open_path(path, &opts, &b, err);
        if (r < 0) {
                install_history_record_install(c, o, NULL, NULL, false, err ? err->msg : strerror(-r));
                return r;
        }
        return install_bundle_opened(c, b, o, ret, err);
}

int install_bundle_next(const Config *c, BundleNextFunc next, void *userdata, const InstallOptions *o,
                        InstallResult *ret, UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions opts = { .keyring = c->keyring, .crl = c->crl, .allow_any_eku = c->allow_any_eku };
        int r;

        report(o, INSTALL_PHASE_VERIFYING, 0, 0);
        r = bundle_open_next(next, userdata, &opts, &b, err);
        if (r < 0) {
                install_history_record_install(c, o, NULL, NULL, false, err ? err->msg : strerror(-r));
                return r;
        }
        return install_bundle_opened(c, b, o, ret, err);
}

static const char *const phase_table[_INSTALL_PHASE_MAX] = {
        [INSTALL_PHASE_VERIFYING] = "verifying",   [INSTALL_PHASE_CHECKING] = "checking",
        [INSTALL_PHASE_PREPARING] = "preparing",   [INSTALL_PHASE_WRITING] = "writing",
        [INSTALL_PHASE_ACTIVATING] = "activating", [INSTALL_PHASE_DONE] = "done",
};

DEFINE_STRING_TABLE_TO_STRING(install_phase, InstallPhase, phase_table)
