/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Run a program without a shell: argv as given, an environment, optional bytes on stdin, stdout and
 * stderr captured together up to a limit, killed (SIGKILL to its process group) after a timeout. */

#include "error.h"

#define PROCESS_OUTPUT_MAX (64u * 1024u)

typedef struct ProcessResult {
        int exit_status; /* 0..255 when it exited; -1 when killed by a signal */
        int signal;      /* the signal that ended it, 0 if none */
        bool timed_out;
        char *output; /* stdout+stderr, at most output_max bytes, NUL-terminated */
        size_t output_size;
} ProcessResult;

/* `envp` may be NULL (a minimal PATH is used). Returns 0 when the program ran (whatever its exit
 * status), -errno when it could not be started or waited for. */
int process_run(char *const argv[], char *const envp[], uint64_t timeout_usec, size_t output_max,
                ProcessResult *ret);
void process_result_done(ProcessResult *r);
/* "exited with status 3", "was killed by signal 9", "timed out after 10 s". */
void process_result_describe(const ProcessResult *r, uint64_t timeout_usec, char *buf, size_t size);
