/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one way upkeep runs another program: no shell, argv as given (argv[0] searched in PATH when
 * asked), in its own process group, no descriptor of ours above 2, optional bytes on its stdin, stdout
 * and stderr captured apart, and the whole group killed when the timeout passes. The program's own
 * exit ends the wait: a background process it left holding stdout or stderr gets one second more to
 * close them, then its exit status counts and a warning (upk_log) says it left a process behind, which
 * keeps running. Used by the boot backends, the health checks, the exec handler's commit and rollback
 * steps and the reboot. */

#include "error.h"

#define PROCESS_STDERR_MAX (4u * 1024u) /* stderr kept for messages; the rest is dropped */
#define PROCESS_PATH       "/usr/sbin:/usr/bin:/sbin:/bin" /* PATH of the programs upkeep runs */

typedef struct ProcessRun {
        const char *const *argv;
        bool search_path;  /* argv[0] is looked up in PATH */
        char *const *envp; /* NULL: the caller's environment */
        const char *input; /* fed to stdin (may be NULL: stdin is /dev/null) */
        size_t input_size;
        size_t output_max; /* stdout beyond this: the program is killed (-EFBIG) */
        uint64_t timeout_usec;
        const char *what; /* names the program in messages */
} ProcessRun;

/* Returns the exit status (0..255) with stdout and stderr (NUL-terminated, never NULL on success) in
 * *ret_stdout / *ret_stderr (each may be NULL). Fails with an UpkErr when it cannot be started
 * (-ENOENT: not found, kind UPK_ERR_CONFIG), did not finish in time (-ETIME: "WHAT: did not finish
 * within N ms; killed"), was killed by a signal (-EIO) or printed too much (-EFBIG). */
int process_run(const ProcessRun *r, char **ret_stdout, char **ret_stderr, UpkErr *err);
/* The whole environment of a program upkeep runs as root (a health check, a boot script): PATH=PROCESS_PATH
 * and KEY=VALUE for each of the `n` pairs in `kv` (key, value, key, value, ...; a pair whose value is NULL
 * is left out). Nothing of the caller's environment (the unit's Environment=, proxy credentials) gets in.
 * strv_free() it; NULL when out of memory. */
char **process_env_new(const char *const *kv, size_t n);
/* Output flattened to one line for a message (control characters to spaces, trimmed, at most 400
 * bytes). In place; "" for NULL. */
const char *process_output_summary(char *s);
/* Marks every descriptor of this process from `lowest` up close-on-exec (the fallback where the C
 * library's posix_spawn cannot close them in the child). 0, or the last error. */
int process_cloexec_from(int lowest);
/* Whether `name` is an executable in PATH (or, containing '/', an executable path). */
bool process_find_program(const char *name);
