/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "install.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "handler.h"
#include "log.h"
#include "process.h"
#include "version.h"
#include "writer.h"

#define CMDLINE_SIZE_MAX      (64u * 1024u)
#define VERSION_FILE_SIZE_MAX (64u * 1024u)
#define HEALTH_CHECKS_MAX     64
#define HEALTH_OUTPUT_MAX     (1024u * 1024u) /* a check printing more than this is killed and fails */

/* Crash-consistency tests kill the installer at named points: UPKEEP_TEST_CRASH_AT=POINT, or
 * write:N to die after exactly N payload bytes went to the handlers. Only the environment of the
 * process that runs the installer can ask for it. */
static void crash_point(const char *name)
{
        const char *want = secure_getenv("UPKEEP_TEST_CRASH_AT");
        if (want && streq(want, name))
                raise(SIGKILL);
}

static bool crash_write_at(uint64_t *ret)
{
        const char *want = secure_getenv("UPKEEP_TEST_CRASH_AT");
        return want && strneq(want, "write:", 6) && safe_atou64(want + 6, ret) >= 0;
}

void install_result_done(InstallResult *r)
{
        free(r->version);
        free(r->slot);
        *r = (InstallResult){};
}

void confirm_result_done(ConfirmResult *r)
{
        free(r->version);
        free(r->slot);
        free(r->reason);
        *r = (ConfirmResult){};
}

/* The distinct bootnames of the configured slots, in order of appearance. */
static size_t slot_bootnames(const Config *c, char **names, size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < c->n_slots; i++) {
                bool seen = false;
                for (size_t j = 0; j < n; j++)
                        seen = seen || streq(names[j], c->slots[i].bootname);
                if (!seen && n < max)
                        names[n++] = c->slots[i].bootname;
        }
        return n;
}

int install_open_boot(const Config *c, BootBackend **ret, UpkErr *err)
{
        char *names[BOOT_SLOTS_MAX];
        size_t n = slot_bootnames(c, names, ELEMENTSOF(names));

        if (n == 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no [slot.CLASS.A|B] sections are configured");
        return boot_backend_new(c, names, n, ret, err);
}

int install_parse_cmdline_slot(char *text, char **ret)
{
        for (char *p = text; *p;) {
                size_t len = strcspn(p, " \t\n");
                if (len > 12 && strneq(p, "upkeep.slot=", 12)) {
                        *ret = strndup(p + 12, len - 12);
                        return *ret ? 1 : -ENOMEM;
                }
                p += len;
                p += strspn(p, " \t\n");
        }
        return 0;
}

static int cmdline_slot(char **ret)
{
        const char *path = secure_getenv("UPKEEP_PROC_CMDLINE") ?: "/proc/cmdline";
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_full_file(path, CMDLINE_SIZE_MAX, &data, &size);
        if (r < 0)
                return r;
        return install_parse_cmdline_slot(data, ret);
}

int install_find_booted(const Config *c, BootBackend *boot, char **ret, UpkErr *err)
{
        char *names[BOOT_SLOTS_MAX], *s = NULL;
        size_t n = slot_bootnames(c, names, ELEMENTSOF(names));
        const char *how;
        int r;

        if (c->boot_booted) {
                s = strdup(c->boot_booted);
                how = "[boot] booted=";
        } else if ((r = cmdline_slot(&s)) > 0)
                how = "upkeep.slot= on the kernel command line";
        else {
                r = boot_get_current(boot, &s, err);
                if (r == -ENODATA) {
                        upk_err_clear(err);
                        return upk_err(err, UPK_ERR_CONFIG, -ENODATA,
                                       "cannot tell which slot is booted: set [boot] booted=, or "
                                       "upkeep.slot= on the "
                                       "kernel command line");
                }
                if (r < 0)
                        return r;
                how = "the boot backend";
        }
        if (!s)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
                if (streq(names[i], s)) {
                        *ret = s;
                        return 0;
                }
        r = upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s names slot \"%s\", which is not a configured bootname",
                    how, s);
        free(s);
        return r;
}

/* VERSION_ID= of an os-release file, or the first line of a plain version file. */
int install_parse_version_file(char *text, const char *path, char **ret, UpkErr *err)
{
        const char *value = NULL;
        Version v;

        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (strneq(line, "VERSION_ID=", 11)) {
                        value = line + 11;
                        break;
                }
                if (!value && !strchr(line, '='))
                        value = line;
        }
        if (!value)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "version file %s: no VERSION_ID= line", path);
        _cleanup_free_ char *s = strdup(value);
        if (!s)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        size_t len = strlen(s);
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\r' || s[len - 1] == '\t'))
                s[--len] = 0;
        if (len >= 2 && (s[0] == '"' || s[0] == '\'') && s[len - 1] == s[0]) {
                memmove(s, s + 1, len - 2);
                s[len - 2] = 0;
        }
        if (version_parse(s, &v) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "version file %s: \"%s\" is not a semantic version", path, s);
        *ret = TAKE_PTR(s);
        return 0;
}

static int read_version_file(const char *path, char **ret, UpkErr *err)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_full_file(path, VERSION_FILE_SIZE_MAX, &data, &size);
        if (r < 0)
                return upk_err(err, UPK_ERR_CONFIG, r, "version file %s: cannot read: %s", path,
                               strerror(-r));
        return install_parse_version_file(data, path, ret, err);
}

int install_current_version(const Config *c, const UpkState *s, const char *booted, char **ret, UpkErr *err)
{
        const char *v = booted ? state_slot_version(s, booted) : NULL;

        if (v) {
                *ret = strdup(v);
                return *ret ? 0 : upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        }
        return read_version_file(c->version_file, ret, err);
}

static const SlotConfig *other_slot(const Config *c, const char *class, const char *booted)
{
        const SlotConfig *a = config_find_slot(c, class, "A"), *b = config_find_slot(c, class, "B");

        if (!a || !b)
                return NULL;
        if (streq(a->bootname, booted))
                return b;
        if (streq(b->bootname, booted))
                return a;
        return NULL;
}

/* Bytes a slot can take: the configured size=, a block device's size, else no limit (UINT64_MAX). */
static int slot_capacity(const SlotConfig *s, uint64_t *ret, UpkErr *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        uint64_t size;

        if (s->size > 0) {
                *ret = s->size;
                return 0;
        }
        if (stat(s->device, &st) < 0) {
                if (errno == ENOENT) {
                        *ret = UINT64_MAX;
                        return 0;
                }
                return upk_err(err, UPK_ERR_IO, -errno, "slot %s.%s: cannot stat %s: %m", s->class, s->name,
                               s->device);
        }
        if (!S_ISBLK(st.st_mode)) {
                *ret = UINT64_MAX;
                return 0;
        }
        fd = open(s->device, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "slot %s.%s: cannot read the size of %s: %m",
                               s->class, s->name, s->device);
        *ret = size;
        return 0;
}

static void history_record(const Config *c, const char *op, const char *version, const char *slot, bool ok,
                           const char *reason)
{
        HistoryEntry e = {
                .time = now_usec(),
                .operation = (char *)op,
                .version = (char *)version,
                .slot = (char *)slot,
                .ok = ok,
                .reason = (char *)reason,
        };
        /* The history is for people; failing to write it must not fail an install. */
        (void)history_append(c->data_dir, &e, NULL);
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
                if (p->slot_class) {
                        const SlotConfig *s = other_slot(j->c, p->slot_class, j->booted);
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
                        r = slot_capacity(s, &cap, err);
                        if (r < 0)
                                return r;
                        if (p->installed_size > cap)
                                return upk_err(err, UPK_ERR_COMPATIBLE, -EFBIG,
                                               "not compatible: payload \"%s\" is %llu bytes, slot %s.%s "
                                               "(%s) holds %llu",
                                               p->name, (unsigned long long)p->installed_size, s->class,
                                               s->name, s->device, (unsigned long long)cap);
                        j->slots[i] = s;
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
                return upk_err(err, UPK_ERR_IO, r, "cannot start the writer thread: %s", strerror(-r));
        bundle_set_deferred_hashing(j->bundle, true);
        if (crash_write_at(&crash_at))
                writer_crash_after(w, crash_at);

        while ((r = bundle_next_payload(j->bundle, BUNDLE_PAYLOAD_DECOMPRESSED, &p, err)) > 0) {
                const SlotConfig *s = j->slots[i];
                Handler *h = j->handlers[i];
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
                crash_point("payload-finished");
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
        crash_point("checked");

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
        crash_point("marked-bad");

        report(j->o, INSTALL_PHASE_WRITING, 0, j->total);
        r = write_payloads(j, err);
        if (r < 0)
                goto fail;
        crash_point("written");

        report(j->o, INSTALL_PHASE_ACTIVATING, j->done, j->total);
        for (size_t i = 0; i < j->m->n_payloads; i++) {
                r = handler_commit(j->handlers[i], err);
                if (r < 0)
                        goto fail;
        }
        crash_point("committed");

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
        crash_point("state-saved");

        /* The one write that makes the new slot bootable, for one try. */
        r = boot_set_try(j->boot, j->target, err);
        if (r < 0)
                goto fail_pending;
        crash_point("activated");
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

/* Every operation that changes the state or the boot environment holds DATA_DIR/lock, so that the
 * offline verbs and the daemon never act at once; then it loads the state (a corrupt one is logged and
 * recovered from). The lock goes with the returned fd (close it to release). */
static int begin_operation(const Config *c, int *ret_lock, UpkState **ret_state, UpkErr *err)
{
        _cleanup_free_ char *path = strdup_printf("%s/lock", c->data_dir), *warning = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!path)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        r = mkdir_p(c->data_dir, 0755);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create %s: %s", c->data_dir, strerror(-r));
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot open %s: %m", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return upk_err(
                                err, UPK_ERR_IO, -EBUSY,
                                "another upkeep operation is running on %s (upkeepd, or an upkeepd verb); "
                                "try again when it has finished",
                                c->data_dir);
                return upk_err(err, UPK_ERR_IO, -errno, "cannot lock %s: %m", path);
        }
        r = state_load(c->data_dir, ret_state, &warning);
        if (warning)
                upk_log(LOG_LEVEL_WARNING, "%s", warning);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot load the state from %s: %s", c->data_dir,
                               strerror(-r));
        *ret_lock = TAKE_FD(fd);
        return 0;
}

static int install_common(const Config *c, Bundle *b, const InstallOptions *o, InstallResult *ret,
                          UpkErr *err)
{
        _cleanup_close_ int lock = -EBADF;
        Job j = { .c = c, .o = o, .bundle = b, .m = bundle_get_manifest(b) };
        int r;

        crash_point("opened");
        r = begin_operation(c, &lock, &j.state, err);
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
                history_record(c, "install", j.m->version_str, j.target, false,
                               err ? err->msg : strerror(-r));
                goto out;
        }
        history_record(c, "install", j.m->version_str, j.target, true, NULL);
        ret->version = strdup(j.m->version_str);
        ret->slot = strdup(j.target);
        ret->reboot = c->reboot == REBOOT_AUTO;
        if (!ret->version || !ret->slot) {
                install_result_done(ret);
                r = upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        }
out:
        j.bundle = NULL; /* the caller's */
        job_done(&j);
        return r;
}

int install_bundle_path(const Config *c, const char *path, const InstallOptions *o, InstallResult *ret,
                        UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions opts = { .keyring = c->keyring, .crl = c->crl };
        int r;

        report(o, INSTALL_PHASE_VERIFYING, 0, 0);
        r = bundle_open_path(path, &opts, &b, err);
        if (r < 0) {
                history_record(c, "install", NULL, NULL, false, err ? err->msg : strerror(-r));
                return r;
        }
        return install_common(c, b, o, ret, err);
}

int install_bundle_next(const Config *c, BundleNextFunc next, void *userdata, const InstallOptions *o,
                        InstallResult *ret, UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions opts = { .keyring = c->keyring, .crl = c->crl };
        int r;

        report(o, INSTALL_PHASE_VERIFYING, 0, 0);
        r = bundle_open_next(next, userdata, &opts, &b, err);
        if (r < 0) {
                history_record(c, "install", NULL, NULL, false, err ? err->msg : strerror(-r));
                return r;
        }
        return install_common(c, b, o, ret, err);
}

static int filter_health(const struct dirent *d)
{
        return d->d_name[0] != '.';
}

/* Run every executable in the health folder in name order; the first failure is the reason. */
static int run_health_checks(const Config *c, const char *version, const char *slot, char **ret_reason)
{
        struct dirent **list = NULL;
        int n, r = 0;

        *ret_reason = NULL;
        n = scandir(c->health_dir, &list, filter_health, alphasort);
        if (n < 0)
                return errno == ENOENT ? 0 : -errno;
        for (int i = 0; i < n && i < HEALTH_CHECKS_MAX && r == 0; i++) {
                _cleanup_free_ char *path = strdup_printf("%s/%s", c->health_dir, list[i]->d_name);
                _cleanup_free_ char *env_version = strdup_printf("UPKEEP_VERSION=%s", version ?: "");
                _cleanup_free_ char *env_slot = strdup_printf("UPKEEP_SLOT=%s", slot);
                _cleanup_free_ char *out = NULL, *errtext = NULL, *what = NULL;
                UpkErr e = {};
                struct stat st;

                if (!path || !env_version || !env_slot) {
                        r = -ENOMEM;
                        break;
                }
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
                        continue;
                what = strdup_printf("health check %s", path);
                const char *argv[] = { path, NULL };
                char *envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", env_version, env_slot, NULL };
                int status = process_run(&(ProcessRun){ .argv = argv,
                                                        .envp = envp,
                                                        .output_max = HEALTH_OUTPUT_MAX,
                                                        .timeout_usec = c->health_timeout_usec,
                                                        .what = what ?: path },
                                         &out, &errtext, &e);
                if (status < 0)
                        *ret_reason = strdup(e.msg);
                else if (status != 0) {
                        const char *detail = !isempty(errtext) ? process_output_summary(errtext)
                                                               : process_output_summary(out);
                        *ret_reason = strdup_printf("health check %s exited with status %d%s%s", path,
                                                    status, detail[0] ? ": " : "", detail);
                }
                if (status != 0)
                        r = 1;
        }
        for (int i = 0; i < n; i++)
                free(list[i]);
        free(list);
        return r;
}

/* The slot is confirmed: good and primary, its version the floor. */
static int confirm_slot(const Config *c, BootBackend *boot, UpkState *s, const char *slot, const char *op,
                        UpkErr *err)
{
        const char *version = state_slot_version(s, slot);
        Version v, floor;
        int r;

        r = boot_mark_good(boot, slot, err);
        if (r < 0)
                return r;
        crash_point("confirm-marked-good");
        if (version && version_parse(version, &v) >= 0 &&
            (!s->version_floor || version_parse(s->version_floor, &floor) < 0 ||
             version_compare(&v, &floor) > 0)) {
                free(s->version_floor);
                s->version_floor = strdup(version);
        }
        state_clear_pending(s);
        r = state_save(c->data_dir, s, err);
        if (r < 0)
                return r;
        history_record(c, op, version, slot, true, NULL);
        return 0;
}

int install_confirm(const Config *c, ConfirmResult *ret, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ char *booted = NULL, *primary = NULL, *reason = NULL;
        SlotState st;
        int r;

        *ret = (ConfirmResult){ .outcome = CONFIRM_NOTHING_PENDING };
        r = begin_operation(c, &lock, &s, err);
        if (r < 0)
                return r;
        r = install_open_boot(c, &boot, err);
        if (r < 0)
                return r;
        r = install_find_booted(c, boot, &booted, err);
        if (r < 0)
                return r;
        r = boot_get_state(boot, booted, &st, err);
        if (r < 0)
                return r;

        if (st == SLOT_STATE_TRY) {
                /* The new system is up on its one try: it stays only if it is healthy. */
                const char *version = state_slot_version(s, booted);
                r = run_health_checks(c, version, booted, &reason);
                if (r < 0)
                        return upk_err(err, UPK_ERR_IO, r, "cannot run the health checks in %s: %s",
                                       c->health_dir, strerror(-r));
                crash_point("confirm-checked");
                ret->version = version ? strdup(version) : NULL;
                ret->slot = strdup(booted);
                if (r == 0) {
                        r = confirm_slot(c, boot, s, booted, "confirm", err);
                        if (r < 0)
                                return r;
                        ret->outcome = CONFIRM_GOOD;
                        return 0;
                }
                r = boot_mark_bad(boot, booted, err);
                if (r < 0)
                        return r;
                history_record(c, "confirm", version, booted, false, reason);
                state_clear_pending(s);
                r = state_save(c->data_dir, s, err);
                if (r < 0)
                        return r;
                ret->outcome = CONFIRM_FAILED;
                ret->reason = TAKE_PTR(reason);
                ret->reboot = c->reboot == REBOOT_AUTO;
                return 0;
        }

        if (s->pending && !streq(s->pending_slot, booted)) {
                /* The bootloader came back to the old slot: the new one did not confirm in time, or the
                 * install never got to activate it. */
                ret->outcome = CONFIRM_FELL_BACK;
                ret->version = s->pending_version ? strdup(s->pending_version) : NULL;
                ret->slot = strdup(s->pending_slot);
                ret->reason = strdup_printf(
                        "version %s on slot %s was not confirmed: the system came back up on slot %s",
                        s->pending_version, s->pending_slot, booted);
                r = boot_mark_bad(boot, s->pending_slot, err);
                if (r < 0)
                        return r;
                history_record(c, "confirm", s->pending_version, s->pending_slot, false, ret->reason);
                state_clear_pending(s);
                r = state_save(c->data_dir, s, err);
                return r < 0 ? r : 0;
        }

        if (s->pending) {
                /* Booted the pending slot and it is already good (marked by hand): just record it. */
                r = confirm_slot(c, boot, s, booted, "confirm", err);
                if (r < 0)
                        return r;
                ret->outcome = CONFIRM_GOOD;
                ret->version = state_slot_version(s, booted) ? strdup(state_slot_version(s, booted)) : NULL;
                ret->slot = strdup(booted);
                return 0;
        }

        /* Nothing pending: re-arm the boot attempts of a good primary, as a bootcount reset would. */
        if (st == SLOT_STATE_GOOD && boot_get_primary(boot, &primary, NULL) >= 0 && streq(primary, booted)) {
                r = boot_mark_good(boot, booted, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int install_mark_good(const Config *c, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ char *booted = NULL;
        int r;

        r = begin_operation(c, &lock, &s, err);
        if (r < 0)
                return r;
        r = install_open_boot(c, &boot, err);
        if (r >= 0)
                r = install_find_booted(c, boot, &booted, err);
        if (r < 0)
                return r;
        return confirm_slot(c, boot, s, booted, "mark-good", err);
}

int install_rollback(const Config *c, char **ret_slot, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ char *booted = NULL;
        const char *other = NULL;
        char *names[BOOT_SLOTS_MAX];
        size_t n = slot_bootnames(c, names, ELEMENTSOF(names));
        SlotState st;
        int r;

        r = begin_operation(c, &lock, &s, err);
        if (r < 0)
                return r;
        r = install_open_boot(c, &boot, err);
        if (r >= 0)
                r = install_find_booted(c, boot, &booted, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (!streq(names[i], booted))
                        other = names[i];
        if (!other || n != 2)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "rollback needs exactly two slots (A and B)");
        r = boot_get_state(boot, other, &st, err);
        if (r < 0)
                return r;
        if (st == SLOT_STATE_BAD)
                return upk_err(err, UPK_ERR_IO, -ENOENT,
                               "slot %s is marked bad (never installed, or its update failed): there is "
                               "nothing to roll "
                               "back to",
                               other);
        r = boot_mark_good(boot, other, err);
        if (r < 0)
                return r;
        if (s->pending) {
                state_clear_pending(s);
                r = state_save(c->data_dir, s, err);
                if (r < 0)
                        return r;
        }
        history_record(c, "rollback", state_slot_version(s, other), other, true, NULL);
        *ret_slot = strdup(other);
        return *ret_slot ? 0 : upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
}

static const char *const phase_table[_INSTALL_PHASE_MAX] = {
        [INSTALL_PHASE_VERIFYING] = "verifying",   [INSTALL_PHASE_CHECKING] = "checking",
        [INSTALL_PHASE_PREPARING] = "preparing",   [INSTALL_PHASE_WRITING] = "writing",
        [INSTALL_PHASE_ACTIVATING] = "activating", [INSTALL_PHASE_DONE] = "done",
};

DEFINE_STRING_TABLE_TO_STRING(install_phase, InstallPhase, phase_table)

static const char *const outcome_table[_CONFIRM_OUTCOME_MAX] = {
        [CONFIRM_NOTHING_PENDING] = "nothing-pending",
        [CONFIRM_GOOD] = "good",
        [CONFIRM_FAILED] = "failed",
        [CONFIRM_FELL_BACK] = "fell-back",
};

DEFINE_STRING_TABLE_TO_STRING(confirm_outcome, ConfirmOutcome, outcome_table)
