/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The other half of an install, at the next start: the health checks, the confirmation or the
 * failure of a pending update; and by hand, mark-good and rollback. */

#include "install.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "install-internal.h"
#include "log.h"
#include "process.h"
#include "strv.h"
#include "version.h"

#define HEALTH_OUTPUT_MAX (1024u * 1024u) /* a check printing more than this is killed and fails */

void confirm_result_done(ConfirmResult *r)
{
        free(r->version);
        free(r->slot);
        free(r->reason);
        *r = (ConfirmResult){};
}

static bool endswith(const char *s, const char *suffix)
{
        size_t n = strlen(s), k = strlen(suffix);
        return n >= k && streq(s + n - k, suffix);
}

/* What is clearly not a check: hidden files, editor backups, what package managers leave next to a
 * changed file. */
static int filter_health(const struct dirent *d)
{
        static const char *const suffixes[] = { "~", ".rpmnew", ".rpmsave", ".rpmorig" };
        const char *name = d->d_name;

        if (name[0] == '.' || strstr(name, ".dpkg-") || strstr(name, ".ucf-"))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
                if (endswith(name, suffixes[i]))
                        return 0;
        return 1;
}

/* Run every executable in the health folder in name order, however many there are; the first failure
 * is the reason. A regular file that is not executable is skipped with a warning. */
static int run_health_checks(const Config *c, const char *version, const char *slot, char **ret_reason)
{
        struct dirent **list = NULL;
        int n, r = 0;

        *ret_reason = NULL;
        n = scandir(c->health_dir, &list, filter_health, alphasort);
        if (n < 0)
                return errno == ENOENT ? 0 : -errno;
        for (int i = 0; i < n && r == 0; i++) {
                _cleanup_free_ char *path = strdup_printf("%s/%s", c->health_dir, list[i]->d_name);
                const char *const kv[] = { "UPKEEP_VERSION", version ?: "", "UPKEEP_SLOT", slot };
                _cleanup_strv_free_ char **envp = process_env_new(kv, ELEMENTSOF(kv) / 2);
                _cleanup_free_ char *out = NULL, *errtext = NULL, *what = NULL;
                UpkErr e = {};
                struct stat st;

                if (!path || !envp) {
                        r = -ENOMEM;
                        break;
                }
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (access(path, X_OK) < 0) {
                        upk_log(LOG_LEVEL_WARNING, "health check %s is not executable: skipped", path);
                        continue;
                }
                /* a check others could change is not run: the confirmation fails */
                if (path_check_trusted(path, false, &e) < 0) {
                        *ret_reason = strdup_printf("health check %s not run: %s", path, e.msg);
                        r = 1;
                        break;
                }
                what = strdup_printf("health check %s", path);
                const char *argv[] = { path, NULL };
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

/* The slot is confirmed: good and primary, its version the floor. When it is the pending update's slot,
 * an update succeeded: the record of an earlier rollback goes. */
static int confirm_slot(const Config *c, BootBackend *boot, UpkState *s, const char *slot, const char *op,
                        UpkErr *err)
{
        const char *version = state_slot_version(s, slot);
        Version v, floor;
        int r;

        if (s->pending && s->pending_slot && streq(s->pending_slot, slot))
                state_clear_rollback(s);

        r = boot_mark_good(boot, slot, err);
        if (r < 0)
                return r;
        install_crash_point("confirm-marked-good");
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
        install_history_record(c, op, version, slot, true, NULL);
        return 0;
}

/* The version the history says was installed into `slot`: its newest entry for that slot, when that is
 * a successful install. NULL when unknown. */
static char *history_installed_version(const Config *c, const char *slot, uint64_t *ret_time)
{
        _cleanup_free_ char *warning = NULL;
        HistoryEntry *h = NULL;
        char *version = NULL;
        size_t n = 0;

        if (history_load(c->data_dir, &h, &n, &warning) < 0)
                return NULL;
        for (size_t i = n; i > 0; i--) {
                const HistoryEntry *e = &h[i - 1];
                if (!e->slot || !streq(e->slot, slot))
                        continue;
                if (streq(e->operation, "install") && e->ok && e->version) {
                        version = strdup(e->version);
                        *ret_time = e->time;
                }
                break;
        }
        history_free(h, n);
        return version;
}

int install_recover_pending(const Config *c, BootBackend *boot, const char *booted, UpkState *s)
{
        _cleanup_free_ char *version = NULL, *slot = NULL, *from = NULL;
        char *names[BOOT_SLOTS_MAX];
        size_t n = install_slot_bootnames(c, names, ELEMENTSOF(names));
        uint64_t since = 0;
        SlotState st;

        if (s->pending)
                return 0;
        /* The try marker: set after the pending update was saved, cleared only together with it. The
         * other slot first (waiting for its reboot, or fallen back), then the booted one (on its try). */
        for (size_t i = 0; i < n && !slot; i++)
                if (!streq(names[i], booted) && boot_get_state(boot, names[i], &st, NULL) >= 0 &&
                    st == SLOT_STATE_TRY) {
                        slot = strdup(names[i]);
                        from = strdup(booted);
                        if (!slot || !from)
                                return -ENOMEM;
                }
        if (!slot && boot_get_state(boot, booted, &st, NULL) >= 0 && st == SLOT_STATE_TRY) {
                slot = strdup(booted);
                if (!slot)
                        return -ENOMEM;
        }
        if (!slot)
                return 0;

        version = history_installed_version(c, slot, &since);
        upk_log(LOG_LEVEL_WARNING,
                "%s/state.json has no record of the update on slot %s (the file was damaged or lost), but "
                "the "
                "boot backend still marks slot %s to try: recovered as an update of version %s%s that %s",
                c->data_dir, slot, slot, version ?: "(unknown: no install into that slot in the history)",
                version ? " (from the history)" : "",
                streq(slot, booted) ? "is on its try now" : "waits for its reboot or has fallen back");
        s->pending = true;
        s->pending_slot = TAKE_PTR(slot);
        s->pending_from_slot = TAKE_PTR(from);
        s->pending_since = since ?: now_usec();
        s->boot_attempts = 0;
        if (version && !state_slot_version(s, s->pending_slot) &&
            state_set_slot_version(s, s->pending_slot, version) < 0)
                return -ENOMEM;
        s->pending_version = TAKE_PTR(version);
        return 1;
}

/* The start of every operation on the booted system: the lock, the state, the boot backend and the
 * booted slot; and a pending update that the state lost but the boot backend still knows. */
static int begin_on_booted(const Config *c, int *ret_lock, UpkState **ret_state, BootBackend **ret_boot,
                           char **ret_booted, UpkErr *err)
{
        int r = install_begin_operation(c, ret_lock, ret_state, err);

        if (r >= 0)
                r = install_open_boot(c, ret_boot, err);
        if (r >= 0)
                r = install_find_booted(c, *ret_boot, ret_booted, err);
        if (r < 0)
                return r;
        r = install_recover_pending(c, *ret_boot, *ret_booted, *ret_state);
        if (r < 0)
                return upk_err_oom(err);
        /* Written back only with a version: a pending update without one is not a valid state file.
         * Without it the boot backend is asked again next time. */
        if (r > 0 && (*ret_state)->pending_version) {
                r = state_save(c->data_dir, *ret_state, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The booted slot holds the version rolled back on it (not overwritten since: an install into it forgets
 * its version first) and another slot is not marked bad (the one the update was installed from, or a
 * later one confirmed): mark the booted slot bad and the other one good, and say why (CONFIRM_FAILED:
 * the daemon reboots). 1 when it did so, 0 when the rule does not apply. */
static int refuse_rolled_back_slot(const Config *c, BootBackend *boot, UpkState *s, const char *booted,
                                   ConfirmResult *ret, UpkErr *err)
{
        const StateRollback *rb = &s->rollback;
        const char *version = state_slot_version(s, booted), *other = NULL, *other_version;
        int r;

        if (!rb->set || !rb->version || !rb->slot || !streq(rb->slot, booted) || !version ||
            !streq(version, rb->version))
                return 0;
        for (size_t i = 0; i < c->n_slots && !other; i++) {
                const char *name = c->slots[i].bootname;
                SlotState st;

                if (!name || streq(name, booted))
                        continue;
                if (boot_get_state(boot, name, &st, NULL) >= 0 && st != SLOT_STATE_BAD)
                        other = name;
        }
        if (!other)
                return 0; /* nothing to go back to: the slot that runs stays */
        other_version = state_slot_version(s, other);

        ret->outcome = CONFIRM_FAILED;
        ret->version = strdup(version);
        ret->slot = strdup(booted);
        ret->reason = strdup_printf(
                "slot %s still holds version %s, which was rolled back here (%s), but the "
                "bootloader started it as a good slot: its boot environment was lost "
                "or reset; back to slot %s%s%s%s",
                booted, version, rb->reason ?: "no reason recorded", other,
                other_version ? " (version " : "", other_version ?: "", other_version ? ")" : "");
        if (!ret->version || !ret->slot || !ret->reason)
                return upk_err_oom(err);
        r = boot_mark_bad(boot, booted, err);
        if (r < 0)
                return r;
        r = boot_mark_good(boot, other, err);
        if (r < 0)
                return r;
        install_history_record(c, "confirm", version, booted, false, ret->reason);
        ret->reboot = c->reboot == REBOOT_AUTO;
        return 1;
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
        r = begin_on_booted(c, &lock, &s, &boot, &booted, err);
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
                        return upk_err(err, UPK_ERR_IO, r, "cannot run the health checks in %s: %m",
                                       c->health_dir);
                install_crash_point("confirm-checked");
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
                install_history_record(c, "confirm", version, booted, false, reason);
                state_clear_pending(s);
                if (state_set_rollback(s, version, booted, reason, now_usec()) < 0)
                        return upk_err_oom(err);
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
                        s->pending_version ?: "(unknown)", s->pending_slot, booted);
                r = boot_mark_bad(boot, s->pending_slot, err);
                if (r < 0)
                        return r;
                /* The running slot is the good one: its start is confirmed like any other, which
                 * clears what the bootloader left on it while falling back (grub's <S>_TRY=1, an
                 * attempt taken) in one write of the boot environment; the bad slot stays as marked. */
                if (st == SLOT_STATE_GOOD) {
                        r = boot_mark_good(boot, booted, err);
                        if (r < 0)
                                return r;
                }
                install_history_record(c, "confirm", s->pending_version, s->pending_slot, false,
                                       ret->reason);
                if (state_set_rollback(s, s->pending_version, s->pending_slot, ret->reason, now_usec()) < 0)
                        return upk_err_oom(err);
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

        /* Nothing pending, yet the booted slot still holds the version that was rolled back on it: the
         * bootloader took it for a good slot because its environment forgot (a single-copy U-Boot
         * environment torn by a power cut, read as none; or reset by hand). It is not confirmed: back to
         * the other slot, as after a failed health check. */
        if (st == SLOT_STATE_GOOD) {
                r = refuse_rolled_back_slot(c, boot, s, booted, ret, err);
                if (r != 0)
                        return r < 0 ? r : 0;
        }

        /* Nothing pending: re-arm the boot attempts of a good primary, as a bootcount reset would. */
        if (st == SLOT_STATE_GOOD && boot_get_primary(boot, &primary, NULL) >= 0 && streq(primary, booted)) {
                r = boot_mark_good(boot, booted, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An update installed into another slot than the booted one and waiting for its reboot. */
static bool reboot_pending(const UpkState *s, const char *booted)
{
        return s->pending && s->pending_slot && !streq(s->pending_slot, booted);
}

/* The untried slot is marked bad (no try marker, no attempts), the booted one good and primary, the
 * pending record cleared. */
static int cancel_pending(const Config *c, BootBackend *boot, UpkState *s, const char *booted, UpkErr *err)
{
        _cleanup_free_ char *version = s->pending_version ? strdup(s->pending_version) : NULL;
        _cleanup_free_ char *slot = strdup(s->pending_slot);
        int r;

        if (!slot || (s->pending_version && !version))
                return upk_err_oom(err);
        r = boot_mark_bad(boot, slot, err);
        if (r < 0)
                return r;
        r = boot_mark_good(boot, booted, err);
        if (r < 0)
                return r;
        state_clear_pending(s);
        r = state_save(c->data_dir, s, err);
        if (r < 0)
                return r;
        install_history_record(c, "cancel", version, slot, true, NULL);
        return 0;
}

int install_mark_good(const Config *c, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ char *booted = NULL;
        int r;

        r = begin_on_booted(c, &lock, &s, &boot, &booted, err);
        if (r < 0)
                return r;
        if (reboot_pending(s, booted)) {
                r = cancel_pending(c, boot, s, booted, err);
                if (r < 0)
                        return r;
        }
        return confirm_slot(c, boot, s, booted, "mark-good", err);
}

int install_cancel_pending(const Config *c, char **ret_version, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ char *booted = NULL, *version = NULL;
        int r;

        r = begin_on_booted(c, &lock, &s, &boot, &booted, err);
        if (r < 0)
                return r;
        if (!reboot_pending(s, booted))
                return upk_err(err, UPK_ERR_IO, -ENOENT, "no update waits for its reboot");
        if (s->pending_version && !(version = strdup(s->pending_version)))
                return upk_err_oom(err);
        r = cancel_pending(c, boot, s, booted, err);
        if (r < 0)
                return r;
        if (ret_version)
                *ret_version = TAKE_PTR(version);
        return 0;
}

int install_rollback(const Config *c, char **ret_slot, bool *ret_cancelled, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ char *booted = NULL;
        const char *other = NULL;
        char *names[BOOT_SLOTS_MAX];
        size_t n = install_slot_bootnames(c, names, ELEMENTSOF(names));
        SlotState st;
        int r;

        *ret_cancelled = false;
        r = begin_on_booted(c, &lock, &s, &boot, &booted, err);
        if (r < 0)
                return r;
        if (reboot_pending(s, booted)) {
                /* The other slot holds an update that was never tried: going "back" to it would make
                 * it good without its health checks. Rolling back now means not taking it. */
                r = cancel_pending(c, boot, s, booted, err);
                if (r < 0)
                        return r;
                *ret_cancelled = true;
                *ret_slot = TAKE_PTR(booted);
                return 0;
        }
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
        install_history_record(c, "rollback", state_slot_version(s, other), other, true, NULL);
        *ret_slot = strdup(other);
        return *ret_slot ? 0 : upk_err_oom(err);
}
