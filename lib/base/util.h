/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers every module uses: scope cleanup, ownership transfer, checked number parsing,
 * string tables; files are in fileio.h. Return convention everywhere: >= 0 success, -errno failure. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define ELEMENTSOF(x)        (sizeof(x) / sizeof((x)[0]))
#define _unused_             __attribute__((unused))
#define _printf_(a, b)       __attribute__((format(printf, a, b)))
#define _nonnull_(...)       __attribute__((nonnull(__VA_ARGS__)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define streq(a, b)     (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
#define isempty(s)      (!(s) || !(s)[0])

/* Hand a pointer or fd out of a cleanup scope. */
#define TAKE_PTR(p)                       \
        ({                                \
                __typeof__(p) _tp_ = (p); \
                (p) = NULL;               \
                _tp_;                     \
        })
#define TAKE_FD(fd)              \
        ({                       \
                int _tf_ = (fd); \
                (fd) = -EBADF;   \
                _tf_;            \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)

int safe_close(int fd);
static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Declare `NAME##p(T **)` calling `func(*p)` when non-NULL, for use with _cleanup_(). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)      \
        _unused_ static inline void func##p(type *p) \
        {                                            \
                if (*p)                              \
                        func(*p);                    \
        }

/* Checked number parsing: decimal only, no sign, no leading/trailing junk, no overflow. */
int safe_atou64(const char *s, uint64_t *ret);

/* printf into a new string; NULL on OOM. */
char *strdup_printf(const char *fmt, ...) _printf_(1, 2);

/* A plain file name: non-empty, at most `max` bytes, no '/', not "." or "..", no control bytes. */
bool filename_is_plain(const char *s, size_t max);

/* Whether the `n` bytes at `data` are all zero (true for n = 0): the first 16 bytes one by one, then the
 * buffer against itself 16 bytes on, with memcmp() (which reads words). */
bool memeqzero(const void *data, size_t n);

/* CLOCK_REALTIME in µs. */
uint64_t now_usec(void);
/* Lower the calling thread's priority by `increment` nice levels, for background work beside an event
 * loop; threads it starts afterwards inherit it. (On Linux the nice value is per thread, and
 * setpriority(PRIO_PROCESS, 0, ...) is the calling thread's.) Best effort: failures are ignored. */
void thread_lower_priority(int increment);

/* Enum names kept in a table indexed by the enum: entry `i`, NULL when out of range (or a hole); and the
 * index of the name `s`, -EINVAL when it is NULL or no entry. The macros define NAME_to_string(TYPE)
 * and TYPE NAME_from_string(const char *) over such a table (enums whose invalid value is -EINVAL). */
const char *string_table_get(const char *const *table, size_t n, int i);
int string_table_lookup(const char *const *table, size_t n, const char *s);

#define DEFINE_STRING_TABLE_TO_STRING(name, type, table)                   \
        const char *name##_to_string(type v)                               \
        {                                                                  \
                return string_table_get(table, ELEMENTSOF(table), (int)v); \
        }
#define DEFINE_STRING_TABLE_FROM_STRING(name, type, table)                     \
        type name##_from_string(const char *s)                                 \
        {                                                                      \
                return (type)string_table_lookup(table, ELEMENTSOF(table), s); \
        }
#define DEFINE_STRING_TABLE(name, type, table)           \
        DEFINE_STRING_TABLE_TO_STRING(name, type, table) \
        DEFINE_STRING_TABLE_FROM_STRING(name, type, table)
