/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Around every operation of the installer: the lock and the state, the history line, and the test
 * hook that kills the installer at named points. */

#include "fileio.h"
#include "install.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>

#include "install-internal.h"
#include "log.h"

/* Crash-consistency tests kill the installer at named points: UPKEEP_TEST_CRASH_AT=POINT, or
 * write:N to die after exactly N payload bytes went to the handlers. Only the environment of the
 * process that runs the installer can ask for it, and only in a test build (tests/README.md); elsewhere
 * these do nothing. */
void install_crash_point(const char *name)
{
#if HAVE_TEST_HOOKS
        const char *want = secure_getenv("UPKEEP_TEST_CRASH_AT");
        if (want && streq(want, name))
                raise(SIGKILL);
#endif
}

bool install_crash_write_at(uint64_t *ret)
{
#if HAVE_TEST_HOOKS
        const char *want = secure_getenv("UPKEEP_TEST_CRASH_AT");
        return want && strneq(want, "write:", 6) && safe_atou64(want + 6, ret) >= 0;
#else
        return false;
#endif
}

static void history_record(const Config *c, const char *op, const char *version, const char *slot, bool ok,
                           const char *reason, const char *action)
{
        HistoryEntry e = {
                .time = now_usec(),
                .operation = (char *)op,
                .version = (char *)version,
                .slot = (char *)slot,
                .ok = ok,
                .reason = (char *)reason,
                .action = (char *)action,
        };
        /* The history is for people; failing to write it must not fail an install. */
        (void)history_append(c->data_dir, &e, NULL);
}

void install_history_record(const Config *c, const char *op, const char *version, const char *slot, bool ok,
                            const char *reason)
{
        history_record(c, op, version, slot, ok, reason, NULL);
}

void install_history_record_install(const Config *c, const InstallOptions *o, const char *version,
                                    const char *slot, bool ok, const char *reason)
{
        history_record(c, "install", version, slot, ok, reason, o ? o->action : NULL);
}

/* Every operation that changes the state or the boot environment holds DATA_DIR/lock, so that the
 * offline verbs and the daemon never act at once; then it loads the state (a corrupt one is logged and
 * recovered from). The lock goes with the returned fd (close it to release). */
int install_begin_operation(const Config *c, int *ret_lock, UpkState **ret_state, UpkErr *err)
{
        _cleanup_free_ char *path = strdup_printf("%s/lock", c->data_dir), *warning = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!path)
                return upk_err_oom(err);
        r = mkdir_p(c->data_dir, 0755);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create %s: %m", c->data_dir);
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
                return upk_err(err, UPK_ERR_IO, r, "cannot load the state from %s: %m", c->data_dir);
        *ret_lock = TAKE_FD(fd);
        return 0;
}
