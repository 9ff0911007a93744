/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A tiny test harness: TEST(name) { ... } registers a case; each case runs in a fresh temporary
 * folder (the current directory), in a child process, so one crash fails one case. Assertions print the
 * file, line and values, and fail the case. `test-foo --list` and `test-foo NAME...` select cases. */

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

typedef void (*test_func_t)(void);
void test_register(const char *name, test_func_t func);
/* A path under the test PKI folder (UPKEEP_TEST_PKI) or the test data folder (UPKEEP_TEST_DATA). */
const char *test_pki(const char *name);
const char *test_data(const char *name);
/* Write `size` bytes to a file in the current folder; or a string. */
void test_write_file(const char *path, const void *data, size_t size);
void test_write_str(const char *path, const char *s);
/* The absolute path of `name` in the current folder (the case's temporary folder); free() it. */
char *test_cwd_path(const char *name);
/* Skip the running case, printing why. Only for an environment that cannot give a case what it needs;
 * the program exits 77 (meson's SKIP) when every case it ran was skipped. */
__attribute__((noreturn)) void test_skip(const char *reason);
/* True when the tests run under user-mode emulation (qemu-user, a cross build's exe_wrapper): meson sets
 * UPKEEP_TEST_EMULATED in cross builds. */
bool test_emulated(void);

#define TEST(name)                                                          \
        static void test_##name(void);                                      \
        __attribute__((constructor)) static void test_register_##name(void) \
        {                                                                   \
                test_register(#name, test_##name);                          \
        }                                                                   \
        static void test_##name(void)

#define test_fail(...)                                                            \
        do {                                                                      \
                fprintf(stderr, "%s:%d: assertion failed: ", __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                                     \
                fputc('\n', stderr);                                              \
                abort();                                                          \
        } while (0)

#define ASSERT_TRUE(expr)                       \
        do {                                    \
                if (!(expr))                    \
                        test_fail("%s", #expr); \
        } while (0)

#define ASSERT_FALSE(expr) ASSERT_TRUE(!(expr))

#define ASSERT_EQ(a, b)                                                     \
        do {                                                                \
                intmax_t _a = (intmax_t)(a), _b = (intmax_t)(b);            \
                if (_a != _b)                                               \
                        test_fail("%s == %s (%jd != %jd)", #a, #b, _a, _b); \
        } while (0)

#define ASSERT_STREQ(a, b)                                                                                \
        do {                                                                                              \
                const char *_a = (a), *_b = (b);                                                          \
                if (!_a || !_b || strcmp(_a, _b) != 0)                                                    \
                        test_fail("%s == %s (\"%s\" != \"%s\")", #a, #b, _a ?: "(null)", _b ?: "(null)"); \
        } while (0)

/* `expr` returns >= 0; on failure print the UpkErr `e` if given. */
#define ASSERT_OK_E(expr, e)                                                                       \
        do {                                                                                       \
                const UpkErr *_e = (e);                                                            \
                int _r = (expr);                                                                   \
                if (_r < 0)                                                                        \
                        test_fail("%s = %d (%s) %s", #expr, _r, strerror(-_r), _e ? _e->msg : ""); \
        } while (0)
#define ASSERT_OK(expr) ASSERT_OK_E(expr, (UpkErr *)NULL)

/* `expr` fails with exactly `code` (a negative errno). */
#define ASSERT_ERR(expr, code)                                                                             \
        do {                                                                                               \
                int _r = (expr);                                                                           \
                if (_r != (code))                                                                          \
                        test_fail("%s = %d, expected %d (%s)", #expr, _r, (int)(code), strerror(-(code))); \
        } while (0)

/* `expr` fails with `code`, the UpkErr has `kind`, and its message contains `substr`. */
#define ASSERT_UPK_ERR(expr, e, code, want_kind, substr)                                                  \
        do {                                                                                              \
                upk_err_clear(e);                                                                         \
                int _r = (expr);                                                                          \
                if (_r != (code))                                                                         \
                        test_fail("%s = %d, expected %d; message: %s", #expr, _r, (int)(code), (e)->msg); \
                if ((e)->kind != (want_kind))                                                             \
                        test_fail("%s: kind %s, expected %s; message: %s", #expr,                         \
                                  upk_err_kind_to_string((e)->kind), upk_err_kind_to_string(want_kind),   \
                                  (e)->msg);                                                              \
                if (!strstr((e)->msg, (substr)))                                                          \
                        test_fail("%s: message \"%s\" lacks \"%s\"", #expr, (e)->msg, (substr));          \
        } while (0)
