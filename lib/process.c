/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

static uint64_t mono_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void process_result_done(ProcessResult *r)
{
        free(r->output);
        r->output = NULL;
        r->output_size = 0;
}

int process_run(char *const argv[], char *const envp[], uint64_t timeout_usec, size_t output_max,
                ProcessResult *ret)
{
        static char *const default_env[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
        _cleanup_free_ char *out = NULL;
        int pipefd[2], status = 0;
        uint64_t deadline;
        size_t size = 0;
        bool timed_out = false, eof = false;
        pid_t pid;

        out = malloc(output_max + 1);
        if (!out)
                return -ENOMEM;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return r;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                (void)setpgid(0, 0);
                if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(pipefd[1], STDOUT_FILENO) < 0 ||
                    dup2(pipefd[1], STDERR_FILENO) < 0)
                        _exit(127);
                signal(SIGPIPE, SIG_DFL);
                /* The daemon blocks SIGTERM and SIGINT for its signalfd: the program starts with none. */
                sigset_t none;
                sigemptyset(&none);
                (void)sigprocmask(SIG_SETMASK, &none, NULL);
                execve(argv[0], argv, envp ?: default_env);
                dprintf(STDERR_FILENO, "cannot execute %s: %m\n", argv[0]);
                _exit(127);
        }
        close(pipefd[1]);
        deadline = mono_usec() + timeout_usec;
        while (!eof) {
                uint64_t now = mono_usec();
                struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                int k = poll(&p, 1, (int)((deadline - now + 999) / 1000));
                if (k < 0 && errno != EINTR)
                        break;
                if (k <= 0)
                        continue;
                char buf[4096];
                ssize_t n = read(pipefd[0], buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        eof = true;
                        break;
                }
                size_t keep = (size_t)n;
                if (keep > output_max - size)
                        keep = output_max - size;
                memcpy(out + size, buf, keep);
                size += keep;
        }
        close(pipefd[0]);
        if (timed_out) {
                (void)kill(-pid, SIGKILL);
                (void)kill(pid, SIGKILL);
        }
        /* The pipe closed: the program ended or closed its outputs; wait until the deadline. */
        for (;;) {
                pid_t w = waitpid(pid, &status, timed_out ? 0 : WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (w == 0) {
                        if (mono_usec() >= deadline) {
                                timed_out = true;
                                (void)kill(-pid, SIGKILL);
                                (void)kill(pid, SIGKILL);
                                continue;
                        }
                        struct timespec ts = { 0, 5 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        }
        out[size] = 0;
        *ret = (ProcessResult){
                .exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                .signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                .timed_out = timed_out,
                .output = TAKE_PTR(out),
                .output_size = size,
        };
        return 0;
}

void process_result_describe(const ProcessResult *r, uint64_t timeout_usec, char *buf, size_t size)
{
        if (r->timed_out)
                snprintf(buf, size, "timed out after %llu s and was killed",
                         (unsigned long long)(timeout_usec / 1000000u));
        else if (r->signal)
                snprintf(buf, size, "was killed by signal %d (%s)", r->signal, strsignal(r->signal));
        else
                snprintf(buf, size, "exited with status %d", r->exit_status);
}
