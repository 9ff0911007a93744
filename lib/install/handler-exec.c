/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* exec:NAME: a program in the handlers folder gets the payload on its standard input and the payload's
 * description in its environment: `NAME install`, then `NAME commit` or `NAME rollback`. Its exit
 * status decides; the tail of what it prints becomes the error message. */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "handler-internal.h"
#include "process.h"

#define EXEC_ENV_MAX     16
#define EXEC_MSG_TAIL    320 /* bytes of output quoted in a message */
#define EXEC_WRITE_CHUNK (64u * 1024u)

typedef struct Tail {
        char buf[HANDLER_OUTPUT_MAX];
        size_t len;
} Tail;

static void tail_add(Tail *t, const char *p, size_t n)
{
        if (n >= sizeof(t->buf)) {
                memcpy(t->buf, p + n - sizeof(t->buf), sizeof(t->buf));
                t->len = sizeof(t->buf);
                return;
        }
        if (t->len + n > sizeof(t->buf)) {
                size_t drop = t->len + n - sizeof(t->buf);
                memmove(t->buf, t->buf + drop, t->len - drop);
                t->len -= drop;
        }
        memcpy(t->buf + t->len, p, n);
        t->len += n;
}

/* The output as one line: control bytes become spaces, trailing white space goes. */
static void tail_string(const Tail *t, char *out, size_t out_size)
{
        size_t n = t->len < out_size - 1 ? t->len : out_size - 1;
        const char *src = t->buf + t->len - n;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)src[i];
                out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        }
        while (n > 0 && out[n - 1] == ' ')
                n--;
        out[n] = 0;
}

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int poll_timeout(uint64_t deadline)
{
        uint64_t now = now_ms();

        if (now >= deadline)
                return 0;
        return deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
}

/* Describe a wait status: "exited with status 3", "was killed by signal KILL". */
static void handler_describe_status(int status, char *buf, size_t size)
{
        if (WIFEXITED(status))
                snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(buf, size, "was killed by signal %s", sigabbrev_np(WTERMSIG(status)) ?: "?");
        else
                snprintf(buf, size, "ended with wait status 0x%x", (unsigned)status);
}

/* Write to a pipe without SIGPIPE: the signal is blocked in this thread for the call and a SIGPIPE it
 * caused is consumed; the write fails with -EPIPE instead. Returns bytes written or -errno. */
static ssize_t handler_write_nosigpipe(int fd, const void *buf, size_t len)
{
        sigset_t pipe_set, old, pending;
        bool was_pending;
        ssize_t k;
        int e;

        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
        k = write(fd, buf, len);
        e = errno;
        if (k < 0 && e == EPIPE && !was_pending) {
                const struct timespec zero = {};
                while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                        ;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (k < 0)
                return -e;
        return k;
}

static int set_nonblock(int fd)
{
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

/* fork + execve with stdin and stdout/stderr set; the child leads its own process group, so that a
 * kill reaches what it started. */
static int spawn(char *const argv[], char *const envp[], int in_fd, int out_fd, pid_t *ret_pid)
{
        sigset_t empty;
        pid_t pid;

#if !HAVE_CLOSE_RANGE
        long max_fd = sysconf(_SC_OPEN_MAX); /* not async-signal-safe: asked before the fork */

        if (max_fd < 0 || max_fd > 65536)
                max_fd = 65536;
#endif
        sigemptyset(&empty);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Only async-signal-safe calls from here on. */
                (void)setpgid(0, 0);
                (void)signal(SIGPIPE, SIG_DFL);
                (void)sigprocmask(SIG_SETMASK, &empty, NULL);
                if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
                    dup2(out_fd, STDERR_FILENO) < 0)
                        _exit(126);
#if HAVE_CLOSE_RANGE
                (void)close_range(3, ~0u, 0);
#else
                for (int fd = 3; fd < max_fd; fd++)
                        (void)close(fd);
#endif
                execve(argv[0], argv, envp);
                _exit(127);
        }
        *ret_pid = pid;
        return 0;
}

static void kill_and_reap(pid_t pid)
{
        (void)kill(-pid, SIGKILL);
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* Read the output to its end, then reap the child, both before `deadline` (CLOCK_MONOTONIC ms). */
static int collect(pid_t pid, int out_fd, uint64_t deadline, Tail *t, int *ret_status)
{
        char buf[4096];
        int status;

        while (out_fd >= 0) {
                struct pollfd pfd = { .fd = out_fd, .events = POLLIN };
                int n = poll(&pfd, 1, poll_timeout(deadline));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0) {
                        kill_and_reap(pid);
                        return -ETIME;
                }
                ssize_t k = read(out_fd, buf, sizeof(buf));
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0)
                        break;
                tail_add(t, buf, (size_t)k);
        }
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (now_ms() >= deadline) {
                        kill_and_reap(pid);
                        return -ETIME;
                }
                (void)nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        *ret_status = status;
        return 0;
}

typedef struct Exec {
        char *program;
        char *env[EXEC_ENV_MAX + 1]; /* env[0] is UPKEEP_PHASE=... */
        pid_t pid;                   /* the install step, 0 once reaped */
        int in_fd, out_fd;
        Tail out;
        uint64_t written;
        uint64_t timeout_ms;
} Exec;

static void exec_free(Exec *s)
{
        if (!s)
                return;
        if (s->pid > 0)
                kill_and_reap(s->pid);
        safe_close(s->in_fd);
        safe_close(s->out_fd);
        for (size_t i = 0; i < EXEC_ENV_MAX; i++)
                free(s->env[i]);
        free(s->program);
        free(s);
}

static int env_add(Exec *s, size_t *n, const char *key, const char *value)
{
        if (!value)
                return 0;
        if (*n >= EXEC_ENV_MAX)
                return -E2BIG;
        s->env[*n] = strdup_printf("%s=%s", key, value);
        if (!s->env[*n])
                return -ENOMEM;
        (*n)++;
        return 0;
}

static int build_env(Exec *s, const struct upkeep_payload *p)
{
        char size[32];
        size_t n = 0;
        int r = 0;

        snprintf(size, sizeof(size), "%" PRIu64, p->size);
        r = r ?: env_add(s, &n, "UPKEEP_PHASE", "install");
        r = r ?: env_add(s, &n, "PATH", HANDLER_PATH);
        r = r ?: env_add(s, &n, "UPKEEP_PAYLOAD_NAME", p->name);
        r = r ?: env_add(s, &n, "UPKEEP_HANDLER", p->handler);
        r = r ?: env_add(s, &n, "UPKEEP_SLOT_CLASS", p->slot_class);
        r = r ?: env_add(s, &n, "UPKEEP_SLOT_NAME", p->slot_name);
        r = r ?: env_add(s, &n, "UPKEEP_DESTINATION", p->destination);
        r = r ?: env_add(s, &n, "UPKEEP_SIZE", p->size == UPKEEP_PAYLOAD_SIZE_UNKNOWN ? NULL : size);
        r = r ?: env_add(s, &n, "UPKEEP_SHA256", p->sha256);
        r = r ?: env_add(s, &n, "UPKEEP_VERSION", p->version);
        r = r ?: env_add(s, &n, "UPKEEP_COMPATIBLE", p->compatible);
        return r;
}

static int set_phase(Exec *s, const char *phase)
{
        char *e = strdup_printf("UPKEEP_PHASE=%s", phase);

        if (!e)
                return -ENOMEM;
        free(s->env[0]);
        s->env[0] = e;
        return 0;
}

/* "PROGRAM STEP exited with status 3: <output>" */
static int step_error(Exec *s, int r, const char *step, int status, char *msg, size_t msg_size)
{
        char how[64], out[EXEC_MSG_TAIL];

        tail_string(&s->out, out, sizeof(out));
        if (r == -ETIME)
                return handler_msg(msg, msg_size, r,
                                   "%s %s did not end within %" PRIu64 " ms and was killed%s%s", s->program,
                                   step, s->timeout_ms, out[0] ? ": " : "", out);
        if (r < 0)
                return handler_msg(msg, msg_size, r, "%s %s: %m", s->program, step);
        handler_describe_status(status, how, sizeof(how));
        return handler_msg(msg, msg_size, -EPROTO, "%s %s %s%s%s", s->program, step, how, out[0] ? ": " : "",
                           out);
}

int handler_exec_begin(const char *program, const struct upkeep_payload *p, void **ret_state, char *msg,
                       size_t msg_size)
{
        _cleanup_close_ int in_rd = -EBADF, out_wr = -EBADF;
        char *argv[] = { NULL, (char *)"install", NULL };
        Exec *s = calloc(1, sizeof(*s));
        int fds[2], r;

        if (!s)
                return -ENOMEM;
        s->in_fd = s->out_fd = -EBADF;
        s->timeout_ms = handler_timeout_ms();
        s->program = strdup(program);
        r = s->program ? build_env(s, p) : -ENOMEM;
        if (r < 0)
                goto fail;
        if (pipe2(fds, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }
        in_rd = fds[0];
        s->in_fd = fds[1];
        if (pipe2(fds, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }
        s->out_fd = fds[0];
        out_wr = fds[1];
        r = set_nonblock(s->in_fd);
        r = r ?: set_nonblock(s->out_fd);
        if (r < 0)
                goto fail;
        argv[0] = s->program;
        r = spawn(argv, s->env, in_rd, out_wr, &s->pid);
        if (r < 0) {
                r = handler_msg(msg, msg_size, r, "cannot start %s: %m", program);
                goto fail;
        }
        *ret_state = s;
        return 0;
fail:
        exec_free(s);
        return r;
}

static void drain_output(Exec *s)
{
        char buf[4096];
        ssize_t k;

        while ((k = read(s->out_fd, buf, sizeof(buf))) > 0)
                tail_add(&s->out, buf, (size_t)k);
}

/* The program stopped reading: say how it ended. */
static int exec_stopped_reading(Exec *s, char *msg, size_t msg_size)
{
        char step[96];
        int status, r;

        s->in_fd = safe_close(s->in_fd);
        r = collect(s->pid, s->out_fd, now_ms() + s->timeout_ms, &s->out, &status);
        s->out_fd = safe_close(s->out_fd);
        s->pid = 0;
        snprintf(step, sizeof(step), "install stopped reading its input after %" PRIu64 " bytes and",
                 s->written);
        if (r >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return handler_msg(msg, msg_size, -EPIPE, "%s %s exited with status 0", s->program, step);
        return step_error(s, r, step, status, msg, msg_size);
}

static int exec_write(void *state, const void *buf, size_t len, char *msg, size_t msg_size)
{
        Exec *s = state;
        const uint8_t *p = buf;

        while (len > 0) {
                struct pollfd pfd[2] = {
                        { .fd = s->in_fd, .events = POLLOUT },
                        { .fd = s->out_fd, .events = POLLIN },
                };
                int n = poll(pfd, s->out_fd >= 0 ? 2 : 1,
                             s->timeout_ms > INT32_MAX ? INT32_MAX : (int)s->timeout_ms);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return handler_msg(msg, msg_size, -errno, "cannot poll %s: %m", s->program);
                if (n == 0)
                        return handler_msg(msg, msg_size, -ETIME,
                                           "%s install read no input for %" PRIu64 " ms", s->program,
                                           s->timeout_ms);
                if (s->out_fd >= 0 && pfd[1].revents) {
                        drain_output(s);
                        if (pfd[1].revents & (POLLHUP | POLLERR) && !(pfd[1].revents & POLLIN))
                                s->out_fd = safe_close(s->out_fd);
                }
                if (!pfd[0].revents)
                        continue;
                ssize_t k = handler_write_nosigpipe(s->in_fd, p,
                                                    len < EXEC_WRITE_CHUNK ? len : EXEC_WRITE_CHUNK);
                if (k == -EAGAIN || k == -EINTR)
                        continue;
                if (k == -EPIPE)
                        return exec_stopped_reading(s, msg, msg_size);
                if (k < 0)
                        return handler_msg(msg, msg_size, (int)k, "cannot write to %s: %m", s->program);
                p += k;
                len -= (size_t)k;
                s->written += (uint64_t)k;
        }
        return 0;
}

static int exec_finish(void *state, char *msg, size_t msg_size)
{
        Exec *s = state;
        int status, r;

        s->in_fd = safe_close(s->in_fd);
        r = collect(s->pid, s->out_fd, now_ms() + s->timeout_ms, &s->out, &status);
        s->out_fd = safe_close(s->out_fd);
        s->pid = 0;
        if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return step_error(s, r, "install", status, msg, msg_size);
        return 0;
}

static int run_step(Exec *s, const char *step, char *msg, size_t msg_size)
{
        const char *argv[] = { s->program, step, NULL };
        _cleanup_free_ char *out = NULL, *errtext = NULL, *what = strdup_printf("%s %s", s->program, step);
        UpkErr e = {};
        int r;

        r = set_phase(s, step);
        if (r < 0)
                return r;
        r = process_run(&(ProcessRun){ .argv = argv,
                                       .envp = s->env,
                                       .output_max = HANDLER_STEP_OUTPUT_MAX,
                                       .timeout_usec = s->timeout_ms * 1000u,
                                       .what = what ?: s->program },
                        &out, &errtext, &e);
        if (r < 0)
                return handler_msg(msg, msg_size, r, "%s", e.msg);
        if (r != 0) {
                const char *detail =
                        !isempty(errtext) ? process_output_summary(errtext) : process_output_summary(out);
                return handler_msg(msg, msg_size, -EPROTO, "%s %s exited with status %d%s%s", s->program,
                                   step, r, detail[0] ? ": " : "", detail);
        }
        return 0;
}

static int exec_commit(void *state, char *msg, size_t msg_size)
{
        Exec *s = state;
        int r = run_step(s, "commit", msg, msg_size);

        exec_free(s);
        return r;
}

static void exec_rollback(void *state)
{
        Exec *s = state;
        char msg[HANDLER_MSG_MAX];

        if (!s)
                return;
        if (s->pid > 0) {
                kill_and_reap(s->pid);
                s->pid = 0;
        }
        s->in_fd = safe_close(s->in_fd);
        s->out_fd = safe_close(s->out_fd);
        (void)run_step(s, "rollback", msg, sizeof(msg)); /* best effort: nobody to tell */
        exec_free(s);
}

static int exec_begin_unused(const struct upkeep_payload *p, void **ret_state, char *msg, size_t msg_size)
{
        return handler_msg(msg, msg_size, -EINVAL, "exec handler without a program");
}

const struct upkeep_handler handler_exec_ops = {
        .abi_version = UPKEEP_HANDLER_ABI_VERSION,
        .name = "exec",
        .begin = exec_begin_unused,
        .write = exec_write,
        .finish = exec_finish,
        .commit = exec_commit,
        .rollback = exec_rollback,
};
