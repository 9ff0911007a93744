/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "fileio.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/wait.h>
#include <unistd.h>

#define TESTS_MAX 512

static struct {
        const char *name;
        test_func_t func;
} tests[TESTS_MAX];
static size_t n_tests;

void test_register(const char *name, test_func_t func)
{
        if (n_tests >= TESTS_MAX) {
                fprintf(stderr, "too many tests (raise TESTS_MAX)\n");
                exit(EXIT_FAILURE);
        }
        tests[n_tests].name = name;
        tests[n_tests].func = func;
        n_tests++;
}

static const char *env_path(const char *var, const char *name)
{
        static char buf[4][4096];
        static unsigned slot;
        const char *dir = getenv(var);

        if (!dir) {
                fprintf(stderr, "%s is not set\n", var);
                abort();
        }
        slot = (slot + 1) % 4;
        snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", dir, name);
        return buf[slot];
}

const char *test_pki(const char *name)
{
        return env_path("UPKEEP_TEST_PKI", name);
}

const char *test_data(const char *name)
{
        return env_path("UPKEEP_TEST_DATA", name);
}

void test_write_file(const char *path, const void *data, size_t size)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || loop_write(fd, data, size) < 0 || close(fd) < 0)
                test_fail("cannot write %s: %m", path);
}

void test_write_str(const char *path, const char *s)
{
        test_write_file(path, s, strlen(s));
}

char *test_cwd_path(const char *name)
{
        char dir[4096];
        char *p;

        if (!getcwd(dir, sizeof(dir)))
                test_fail("getcwd: %m");
        p = strdup_printf("%s/%s", dir, name);
        if (!p)
                test_fail("out of memory");
        return p;
}

#define EXIT_TEST_SKIPPED 77

void test_skip(const char *reason)
{
        fprintf(stderr, "skipped: %s\n", reason);
        fflush(stdout);
        _exit(EXIT_TEST_SKIPPED);
}

bool test_emulated(void)
{
        return !isempty(getenv("UPKEEP_TEST_EMULATED"));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

/* 0 passed, 1 failed, 2 skipped. */
static int run_one(size_t i)
{
        char tmp[] = "/tmp/upkeep-test-XXXXXX";
        int status;
        pid_t pid;

        if (!mkdtemp(tmp)) {
                perror("mkdtemp");
                return 1;
        }
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                perror("fork");
                return 1;
        }
        if (pid == 0) {
                if (chdir(tmp) < 0)
                        _exit(EXIT_FAILURE);
                tests[i].func();
                fflush(stdout);
                _exit(EXIT_SUCCESS);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return 1;
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_TEST_SKIPPED)
                return 2;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char *argv[])
{
        unsigned failed = 0, skipped = 0, ran = 0;

        if (argc == 2 && streq(argv[1], "--list")) {
                for (size_t i = 0; i < n_tests; i++)
                        printf("%s\n", tests[i].name);
                return EXIT_SUCCESS;
        }
        for (size_t i = 0; i < n_tests; i++) {
                bool selected = argc <= 1;
                for (int a = 1; a < argc; a++)
                        if (streq(argv[a], tests[i].name))
                                selected = true;
                if (!selected)
                        continue;
                ran++;
                int r = run_one(i);
                printf("%s %s\n", r == 0 ? "ok  " : r == 2 ? "skip" : "FAIL", tests[i].name);
                failed += r == 1;
                skipped += r == 2;
        }
        printf("%u of %u cases passed", ran - failed - skipped, ran);
        if (skipped > 0)
                printf(", %u skipped", skipped);
        printf("\n");
        if (ran == 0) {
                fprintf(stderr, "no test case matched\n");
                return EXIT_FAILURE;
        }
        if (failed)
                return EXIT_FAILURE;
        return skipped == ran ? EXIT_TEST_SKIPPED : EXIT_SUCCESS;
}
