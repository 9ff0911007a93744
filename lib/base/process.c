/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "process.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "format.h"
#include "log.h"
#include "strv.h"

/* How long output may stay open after the program itself exited: a background process it left
 * holding stdout or stderr is not waited for longer than this. */
#define PROCESS_EXIT_GRACE_USEC (1000u * 1000u)
/* Without a pidfd, how often the loop looks whether the program exited. */
#define PROCESS_EXIT_POLL_MSEC 20

static uint64_t mono_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Keep our pipe ends off fds 0..2, so dup2 in the child always does something. */
static int fd_above_stdio(int fd)
{
        int nfd;

        if (fd < 0 || fd > 2)
                return fd;
        nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        safe_close(fd);
        return nfd < 0 ? -errno : nfd;
}

static int append(char **buf, size_t *size, const char *data, size_t n, size_t max, bool truncate)
{
        char *p;

        if (*size + n > max) {
                if (!truncate)
                        return -EFBIG;
                n = max - *size;
        }
        p = realloc(*buf, *size + n + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p + *size, data, n);
        *size += n;
        p[*size] = 0;
        *buf = p;
        return 0;
}

/* Kill the program's process group; reap the program unless that happened already. */
static void kill_and_reap(pid_t pid, bool reaped)
{
        (void)kill(-pid, SIGKILL);
        if (reaped)
                return;
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

static int pidfd_open_or_not(pid_t pid)
{
#ifdef SYS_pidfd_open
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                fd = safe_close(fd);
        return fd;
#else
        return -EBADF;
#endif
}

int process_cloexec_from(int lowest)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int r = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char *end;
                long fd = strtol(de->d_name, &end, 10);
                int flags;

                if (de->d_name[0] == '.' || *end || fd < lowest || fd == dirfd(d))
                        continue;
                flags = fcntl((int)fd, F_GETFD);
                if (flags >= 0 && !(flags & FD_CLOEXEC) && fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC) < 0)
                        r = -errno;
        }
        closedir(d);
        return r;
}

int process_run(const ProcessRun *r, char **ret_stdout, char **ret_stderr, UpkErr *err)
{
        _cleanup_close_ int in_w = -EBADF, in_r = -EBADF, out_r = -EBADF, out_w = -EBADF, err_r = -EBADF,
                            err_w = -EBADF, pidfd = -EBADF;
        _cleanup_free_ char *out = NULL, *errbuf = NULL;
        size_t out_size = 0, err_size = 0, in_done = 0;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        uint64_t deadline, exited_at = 0;
        sigset_t none, all;
        int fds[2], status = 0, k;
        bool exited = false, left_behind = false;
        pid_t pid;

        /* Looked up first: where posix_spawn reports a failed exec only as exit status 127 (qemu-user,
         * some C libraries), "not found" would otherwise read as the program failing. */
        if (r->search_path && !strchr(r->argv[0], '/') ? !process_find_program(r->argv[0])
                                                       : access(r->argv[0], F_OK) < 0 && errno == ENOENT)
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT, "%s: %s not found%s", r->what, r->argv[0],
                               r->search_path ? " in PATH" : "");
        if (r->input) {
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                        return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a socket pair: %m",
                                       r->what);
                in_r = fd_above_stdio(fds[0]);
                in_w = fd_above_stdio(fds[1]);
        } else {
                in_r = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
        }
        if (in_r < 0 || (r->input && in_w < 0))
                return upk_err(err, UPK_ERR_IO, -EMFILE, "%s: cannot set up standard input", r->what);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a pipe: %m", r->what);
        out_r = fd_above_stdio(fds[0]);
        out_w = fd_above_stdio(fds[1]);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a pipe: %m", r->what);
        err_r = fd_above_stdio(fds[0]);
        err_w = fd_above_stdio(fds[1]);
        if (out_r < 0 || out_w < 0 || err_r < 0 || err_w < 0)
                return upk_err(err, UPK_ERR_IO, -EMFILE, "%s: cannot set up pipes", r->what);

        sigemptyset(&none);
        sigfillset(&all);
        sigdelset(&all, SIGKILL);
        sigdelset(&all, SIGSTOP);
        if (posix_spawn_file_actions_init(&fa) != 0)
                return upk_err_oom(err);
        if (posix_spawnattr_init(&attr) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return upk_err_oom(err);
        }
        k = posix_spawn_file_actions_adddup2(&fa, in_r, STDIN_FILENO);
        if (k == 0)
                k = posix_spawn_file_actions_adddup2(&fa, out_w, STDOUT_FILENO);
        if (k == 0)
                k = posix_spawn_file_actions_adddup2(&fa, err_w, STDERR_FILENO);
#if HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCLOSEFROM_NP
        if (k == 0) /* nothing of ours leaks into it, close-on-exec or not */
                k = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
#else
        if (k == 0) /* a C library without closefrom for posix_spawn: mark ours close-on-exec */
                (void)process_cloexec_from(STDERR_FILENO + 1);
#endif
        if (k == 0)
                k = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                            POSIX_SPAWN_SETSIGDEF);
        if (k == 0)
                k = posix_spawnattr_setpgroup(&attr, 0);
        if (k == 0)
                k = posix_spawnattr_setsigmask(&attr, &none);
        if (k == 0)
                k = posix_spawnattr_setsigdefault(&attr, &all);
        if (k == 0)
                k = (r->search_path ? posix_spawnp : posix_spawn)(
                        &pid, r->argv[0], &fa, &attr, (char *const *)r->argv, r->envp ? r->envp : environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (k == ENOENT)
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT, "%s: %s not found%s", r->what, r->argv[0],
                               r->search_path ? " in PATH" : "");
        if (k != 0)
                return upk_err(err, UPK_ERR_IO, -k, "%s: cannot run %s: %m", r->what, r->argv[0]);

        in_r = safe_close(in_r);
        out_w = safe_close(out_w);
        err_w = safe_close(err_w);
        if (in_w >= 0 && r->input_size == 0) {
                (void)shutdown(in_w, SHUT_WR);
                in_w = safe_close(in_w);
        }

        pidfd = pidfd_open_or_not(pid);
        deadline = mono_usec() + r->timeout_usec;
        while (out_r >= 0 || err_r >= 0 || in_w >= 0) {
                struct pollfd p[4] = {
                        { .fd = out_r, .events = POLLIN },
                        { .fd = err_r, .events = POLLIN },
                        { .fd = in_w, .events = POLLOUT },
                        { .fd = exited ? -EBADF : pidfd, .events = POLLIN },
                };
                uint64_t now = mono_usec(), until = deadline;
                char buf[4096];
                ssize_t n;
                int wait_ms;

                /* The program exited but something it started still holds its output: give that a
                 * moment to finish, then go by the program's exit status. */
                if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
                        exited = true;
                        exited_at = now;
                }
                if (exited && exited_at + PROCESS_EXIT_GRACE_USEC < deadline)
                        until = exited_at + PROCESS_EXIT_GRACE_USEC;
                if (now >= until) {
                        if (exited) {
                                left_behind = true;
                                break;
                        }
                        kill_and_reap(pid, false);
                        return upk_err(err, UPK_ERR_IO, -ETIME,
                                       "%s: did not finish within %" PRIu64 " ms; killed", r->what,
                                       r->timeout_usec / 1000u);
                }
                wait_ms = (int)((until - now + 999) / 1000);
                if (!exited && pidfd < 0 && wait_ms > PROCESS_EXIT_POLL_MSEC)
                        wait_ms = PROCESS_EXIT_POLL_MSEC;
                k = poll(p, 4, wait_ms);
                if (k < 0 && errno != EINTR) {
                        k = -errno;
                        kill_and_reap(pid, exited);
                        return upk_err(err, UPK_ERR_IO, k, "%s: poll failed: %m", r->what);
                }
                if (k <= 0)
                        continue;
                if (p[0].revents) {
                        n = read(out_r, buf, sizeof(buf));
                        if (n < 0 && errno != EINTR && errno != EAGAIN) {
                                out_r = safe_close(out_r);
                        } else if (n == 0) {
                                out_r = safe_close(out_r);
                        } else if (n > 0) {
                                k = append(&out, &out_size, buf, (size_t)n, r->output_max, false);
                                if (k < 0) {
                                        kill_and_reap(pid, exited);
                                        return upk_err(err, UPK_ERR_IO, k,
                                                       "%s: printed more than %zu bytes; killed", r->what,
                                                       r->output_max);
                                }
                        }
                }
                if (p[1].revents) {
                        n = read(err_r, buf, sizeof(buf));
                        if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN)))
                                err_r = safe_close(err_r);
                        else if (n > 0 &&
                                 append(&errbuf, &err_size, buf, (size_t)n, PROCESS_STDERR_MAX, true) < 0) {
                                kill_and_reap(pid, exited);
                                return upk_err_oom(err);
                        }
                }
                if (p[2].revents) {
                        n = send(in_w, r->input + in_done, r->input_size - in_done,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno != EINTR && errno != EAGAIN)
                                in_w = safe_close(in_w); /* it stopped reading; its exit status tells */
                        else if (n > 0 && (in_done += (size_t)n) == r->input_size) {
                                (void)shutdown(in_w, SHUT_WR);
                                in_w = safe_close(in_w);
                        }
                }
        }

        if (left_behind)
                upk_log(LOG_LEVEL_WARNING,
                        "%s: exited with status %d but left a process behind that still holds its output; "
                        "not waiting for it",
                        r->what, WIFEXITED(status) ? WEXITSTATUS(status) : -1);

        /* Output closed; wait for the exit, still within the deadline. */
        while (!exited) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR) {
                        k = -errno;
                        kill_and_reap(pid, false);
                        return upk_err(err, UPK_ERR_IO, k, "%s: waitpid failed: %m", r->what);
                }
                if (mono_usec() >= deadline) {
                        kill_and_reap(pid, false);
                        return upk_err(err, UPK_ERR_IO, -ETIME,
                                       "%s: did not finish within %" PRIu64 " ms; killed", r->what,
                                       r->timeout_usec / 1000u);
                }
                (void)nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 }, NULL);
        }
        if (WIFSIGNALED(status))
                return upk_err(err, UPK_ERR_IO, -EIO, "%s: killed by signal %d", r->what, WTERMSIG(status));
        if (!WIFEXITED(status))
                return upk_err(err, UPK_ERR_IO, -EIO, "%s: ended abnormally", r->what);

        if (!out && !(out = strdup("")))
                return upk_err_oom(err);
        if (!errbuf && !(errbuf = strdup("")))
                return upk_err_oom(err);
        if (ret_stdout)
                *ret_stdout = TAKE_PTR(out);
        if (ret_stderr)
                *ret_stderr = TAKE_PTR(errbuf);
        return WEXITSTATUS(status);
}

char **process_env_new(const char *const *kv, size_t n)
{
        _cleanup_strv_free_ char **env = calloc(n + 2, sizeof(char *));
        size_t k = 0;

        if (!env || !(env[k++] = strdup("PATH=" PROCESS_PATH)))
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (!kv[2 * i + 1])
                        continue;
                if (!(env[k++] = strdup_printf("%s=%s", kv[2 * i], kv[2 * i + 1])))
                        return NULL;
        }
        return TAKE_PTR(env);
}

const char *process_output_summary(char *s)
{
        size_t n;

        if (!s)
                return "";
        format_flatten(s);
        n = strlen(s);
        while (n > 0 && s[n - 1] == ' ')
                s[--n] = 0;
        while (*s == ' ')
                s++;
        if (strlen(s) > 400)
                s[400] = 0;
        return s;
}

bool process_find_program(const char *name)
{
        const char *p;

        if (strchr(name, '/'))
                return access(name, X_OK) >= 0;
        p = getenv("PATH");
        if (!p)
                p = "/usr/local/bin:/usr/bin:/bin";
        for (;;) {
                size_t len = strcspn(p, ":");
                _cleanup_free_ char *full = strdup_printf("%.*s/%s", (int)len, p, name);
                struct stat st;

                if (len > 0 && full && stat(full, &st) >= 0 && S_ISREG(st.st_mode) &&
                    access(full, X_OK) >= 0)
                        return true;
                if (!p[len])
                        return false;
                p += len + 1;
        }
}
