/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#include "fileio.h"
#include "log.h"
#include "process.h"
#include "strv.h"
#include "tests.h"
#include "util.h"

#define OUTPUT_MAX (64u * 1024u)
#define TIMEOUT    (60u * 1000u * 1000u) /* far beyond what any case needs: they wait on events */

/* /bin/sh -c SCRIPT with the defaults of these tests. */
static int run_sh(const char *script, const char *input, char **ret_out, char **ret_err, UpkErr *err)
{
        const char *argv[] = { "/bin/sh", "-c", script, NULL };

        return process_run(&(ProcessRun){ .argv = argv,
                                          .input = input,
                                          .input_size = input ? strlen(input) : 0,
                                          .output_max = OUTPUT_MAX,
                                          .timeout_usec = TIMEOUT,
                                          .what = "test program" },
                           ret_out, ret_err, err);
}

TEST(exit_status_and_output_apart)
{
        _cleanup_free_ char *out = NULL, *errtext = NULL;
        UpkErr e = {};

        ASSERT_EQ(run_sh("echo out; echo err >&2; echo more; exit 3", NULL, &out, &errtext, &e), 3);
        ASSERT_STREQ(out, "out\nmore\n");
        ASSERT_STREQ(errtext, "err\n");
}

TEST(output_never_null)
{
        _cleanup_free_ char *out = NULL, *errtext = NULL;
        UpkErr e = {};

        ASSERT_EQ(run_sh("exit 0", NULL, &out, &errtext, &e), 0);
        ASSERT_STREQ(out, "");
        ASSERT_STREQ(errtext, "");
        ASSERT_EQ(run_sh("exit 255", NULL, NULL, NULL, &e), 255);
}

TEST(stdin_is_fed_then_closed)
{
        _cleanup_free_ char *out = NULL, *big = NULL, *big_out = NULL;
        size_t n = 1024u * 1024u;
        UpkErr e = {};

        ASSERT_EQ(run_sh("cat", "hello\nworld", &out, NULL, &e), 0);
        ASSERT_STREQ(out, "hello\nworld");

        /* More than a pipe holds, read while it is written: no deadlock. */
        big = malloc(n + 1);
        ASSERT_TRUE(big);
        memset(big, 'x', n);
        big[n] = 0;
        ASSERT_EQ(run_sh("wc -c", big, &big_out, NULL, &e), 0);
        ASSERT_EQ(strtoull(big_out, NULL, 10), n);
}

TEST(stdin_without_input_is_empty)
{
        _cleanup_free_ char *out = NULL;
        UpkErr e = {};

        ASSERT_EQ(run_sh("cat; echo end", NULL, &out, NULL, &e), 0);
        ASSERT_STREQ(out, "end\n");
}

TEST(environment_given)
{
        const char *argv[] = { "/bin/sh", "-c", "echo \"$UPKEEP_X-$HOME\"", NULL };
        char *envp[] = { (char *)"UPKEEP_X=given", NULL };
        _cleanup_free_ char *out = NULL;
        UpkErr e = {};

        ASSERT_EQ(process_run(&(ProcessRun){ .argv = argv,
                                             .envp = envp,
                                             .output_max = OUTPUT_MAX,
                                             .timeout_usec = TIMEOUT,
                                             .what = "env" },
                              &out, NULL, &e),
                  0);
        ASSERT_STREQ(out, "given-\n"); /* only what was given: no HOME */
}

TEST(env_new_is_short_and_complete)
{
        const char *const kv[] = { "UPKEEP_A", "1", "UPKEEP_GONE", NULL, "UPKEEP_B", "two words" };
        _cleanup_strv_free_ char **env = NULL;

        ASSERT_OK(setenv("UPKEEP_LEAK", "x", 1));
        env = process_env_new(kv, ELEMENTSOF(kv) / 2);
        ASSERT_TRUE(env);
        ASSERT_EQ(strv_length(env), 3);
        ASSERT_STREQ(env[0], "PATH=" PROCESS_PATH);
        ASSERT_STREQ(env[1], "UPKEEP_A=1");
        ASSERT_STREQ(env[2], "UPKEEP_B=two words");
        strv_free(env);
        env = process_env_new(NULL, 0);
        ASSERT_EQ(strv_length(env), 1);
}

TEST(program_not_found)
{
        const char *in_path[] = { "upkeep-test-no-such-program", NULL };
        const char *absolute[] = { "/nonexistent/upkeep-test-program", NULL };
        const char *relative[] = { "sh", "-c", "exit 0", NULL };
        UpkErr e = {};

        ASSERT_UPK_ERR(process_run(&(ProcessRun){ .argv = in_path,
                                                  .search_path = true,
                                                  .timeout_usec = TIMEOUT,
                                                  .what = "the tool" },
                                   NULL, NULL, &e),
                       &e, -ENOENT, UPK_ERR_CONFIG,
                       "the tool: upkeep-test-no-such-program not found in PATH");
        ASSERT_UPK_ERR(
                process_run(&(ProcessRun){ .argv = absolute, .timeout_usec = TIMEOUT, .what = "the tool" },
                            NULL, NULL, &e),
                &e, -ENOENT, UPK_ERR_CONFIG, "the tool: /nonexistent/upkeep-test-program not found");
        ASSERT_FALSE(strstr(e.msg, "PATH"));
        /* A bare name is looked up in PATH only when asked. */
        ASSERT_UPK_ERR(process_run(&(ProcessRun){ .argv = relative, .timeout_usec = TIMEOUT, .what = "sh" },
                                   NULL, NULL, &e),
                       &e, -ENOENT, UPK_ERR_CONFIG, "not found");
        ASSERT_EQ(process_run(&(ProcessRun){ .argv = relative,
                                             .search_path = true,
                                             .timeout_usec = TIMEOUT,
                                             .what = "sh" },
                              NULL, NULL, &e),
                  0);
}

TEST(killed_by_a_signal)
{
        UpkErr e = {};

        ASSERT_UPK_ERR(run_sh("kill -TERM $$", NULL, NULL, NULL, &e), &e, -EIO, UPK_ERR_IO,
                       "test program: killed by signal 15");
}

TEST(too_much_output_kills_it)
{
        const char *argv[] = { "/bin/sh", "-c", "while :; do echo 0123456789; done", NULL };
        UpkErr e = {};

        ASSERT_UPK_ERR(process_run(&(ProcessRun){ .argv = argv,
                                                  .output_max = 1000,
                                                  .timeout_usec = TIMEOUT,
                                                  .what = "chatty" },
                                   NULL, NULL, &e),
                       &e, -EFBIG, UPK_ERR_IO, "chatty: printed more than 1000 bytes; killed");
}

TEST(stderr_is_cut_not_fatal)
{
        _cleanup_free_ char *errtext = NULL;
        UpkErr e = {};

        ASSERT_EQ(run_sh("i=0; while [ $i -lt 2000 ]; do echo 0123456789 >&2; i=$((i+1)); done", NULL, NULL,
                         &errtext, &e),
                  0);
        ASSERT_EQ(strlen(errtext), PROCESS_STDERR_MAX);
}

static bool process_gone(pid_t pid)
{
        char path[64], state = 0;
        _cleanup_free_ char *stat = NULL;
        const char *p;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (read_full_file(path, 4096, &stat, NULL) < 0)
                return true;
        p = strrchr(stat, ')');
        if (p && p[1] == ' ')
                state = p[2];
        return state == 'Z' || state == 'X';
}

TEST(timeout_kills_the_whole_group)
{
        _cleanup_free_ char *pid_text = NULL;
        const char *argv[] = { "/bin/sh", "-c", "sleep 600 & echo $! > child.pid; wait", NULL };
        uint64_t pid;
        UpkErr e = {};

        ASSERT_UPK_ERR(process_run(&(ProcessRun){ .argv = argv,
                                                  .output_max = OUTPUT_MAX,
                                                  .timeout_usec = 300u * 1000u,
                                                  .what = "slow" },
                                   NULL, NULL, &e),
                       &e, -ETIME, UPK_ERR_IO, "slow: did not finish within 300 ms; killed");

        /* The program's own child went with it (SIGKILL to the process group): wait for it to be gone. */
        ASSERT_OK(read_full_file("child.pid", 64, &pid_text, NULL));
        pid_text[strcspn(pid_text, "\n")] = 0;
        ASSERT_OK(safe_atou64(pid_text, &pid));
        for (unsigned i = 0; i < 6000 && !process_gone((pid_t)pid); i++)
                (void)poll(NULL, 0, 10);
        ASSERT_TRUE(process_gone((pid_t)pid));
}

TEST(output_summary)
{
        char text[] = "  line one\nline\ttwo\r\n\x01  ", empty[] = "", big[600];

        ASSERT_STREQ(process_output_summary(text), "line one line two");
        ASSERT_STREQ(process_output_summary(empty), "");
        ASSERT_STREQ(process_output_summary(NULL), "");
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        ASSERT_EQ(strlen(process_output_summary(big)), 400);
}

TEST(find_program)
{
        const char *old_path = getenv("PATH");
        _cleanup_free_ char *saved = old_path ? strdup(old_path) : NULL, *dir = NULL;

        ASSERT_TRUE(process_find_program("sh"));
        ASSERT_TRUE(process_find_program("/bin/sh"));
        ASSERT_FALSE(process_find_program("upkeep-test-no-such-program"));
        ASSERT_FALSE(process_find_program("/nonexistent/sh"));

        /* Only executable regular files count. */
        ASSERT_TRUE(mkdir("bin", 0755) == 0);
        ASSERT_TRUE(mkdir("bin/folder", 0755) == 0);
        test_write_file("bin/tool", "#!/bin/sh\n", 10);
        test_write_file("bin/data", "x", 1);
        ASSERT_TRUE(chmod("bin/tool", 0755) == 0);
        ASSERT_TRUE(chmod("bin/folder", 0755) == 0);
        dir = getcwd(NULL, 0);
        ASSERT_TRUE(dir);
        _cleanup_free_ char *path = strdup_printf("/nonexistent::%s/bin", dir);
        ASSERT_TRUE(path);
        ASSERT_TRUE(setenv("PATH", path, 1) == 0);
        ASSERT_TRUE(process_find_program("tool"));
        ASSERT_FALSE(process_find_program("data"));
        ASSERT_FALSE(process_find_program("folder"));
        ASSERT_FALSE(process_find_program("sh"));
        ASSERT_FALSE(process_find_program("./bin/data"));
        ASSERT_TRUE(process_find_program("./bin/tool"));
        if (saved)
                ASSERT_TRUE(setenv("PATH", saved, 1) == 0);
}

static char *logged;

static void capture_log(LogLevel level, const char *message, void *userdata)
{
        (void)userdata;
        if (level == LOG_LEVEL_WARNING && !logged)
                logged = strdup(message);
}

static void kill_pid_in(const char *file)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        int pid;

        ASSERT_OK(read_full_file(file, 64, &data, &size));
        pid = atoi(data);
        ASSERT_TRUE(pid > 1);
        (void)kill(pid, SIGKILL);
}

/* A program that exits but leaves a background process holding stdout (in its process group, or in a
 * session of its own) is done when it exits: its status counts, not the full timeout. */
TEST(process_run_does_not_wait_for_what_the_program_left_behind)
{
        const char *argv[] = {
                "/bin/sh", "-c",
                "sleep 60 & echo $! >bg.pid; setsid sh -c 'echo $$ >sid.pid; exec sleep 60' & "
                "while ! test -s sid.pid; do sleep 0.01; done; echo done; exit 3",
                NULL
        };
        _cleanup_free_ char *out = NULL, *errtext = NULL;
        UpkErr e = {};
        int r;

        upk_log_set_func(capture_log, NULL);
        r = process_run(&(ProcessRun){ .argv = argv,
                                       .output_max = 4096,
                                       .timeout_usec = 20u * 1000u * 1000u,
                                       .what = "left-behind test" },
                        &out, &errtext, &e);
        upk_log_set_func(NULL, NULL);
        kill_pid_in("bg.pid");
        kill_pid_in("sid.pid");
        ASSERT_OK_E(r, &e);
        ASSERT_EQ(r, 3);
        ASSERT_STREQ(out, "done\n");
        ASSERT_TRUE(logged &&
                    strstr(logged, "left-behind test: exited with status 3 but left a process behind"));
        free(logged);
        logged = NULL;
}

/* Only stdin, stdout and stderr reach the program, close-on-exec or not. */
TEST(process_run_closes_other_descriptors)
{
        int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
        _cleanup_free_ char *script = NULL, *out = NULL;
        UpkErr e = {};

        ASSERT_TRUE(fd > 2);
        script = strdup_printf("test -e /proc/$$/fd/%d && echo leaked; exit 0", fd);
        const char *argv[] = { "/bin/sh", "-c", script, NULL };
        ASSERT_OK_E(process_run(&(ProcessRun){ .argv = argv,
                                               .output_max = 4096,
                                               .timeout_usec = 20u * 1000u * 1000u,
                                               .what = "descriptor test" },
                                &out, NULL, &e),
                    &e);
        safe_close(fd);
        ASSERT_FALSE(strstr(out, "leaked"));
}

TEST(cloexec_from_marks_what_is_left_open)
{
        int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */

        ASSERT_TRUE(fd > 2);
        ASSERT_FALSE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ASSERT_OK(process_cloexec_from(fd));
        ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        safe_close(fd);
}
