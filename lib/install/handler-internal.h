/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by handler.c and the built-in handlers; not for other modules. */

#include <signal.h>
#include <sys/types.h>

#include "handler.h"
#include "process.h"

#define HANDLER_STEP_OUTPUT_MAX    (1024u * 1024u)     /* output of commit/rollback/mkfs; more: killed */
#define HANDLER_OUTPUT_MAX         4096u               /* bytes of a program's output kept for messages */
#define HANDLER_TIMEOUT_MS_DEFAULT (10u * 60u * 1000u) /* exec handler steps, mkfs */
#define HANDLER_TIMEOUT_MS_MAX     (24u * 3600u * 1000u)
#define HANDLER_PATH               PROCESS_PATH /* PATH for the programs we run */
#define HANDLER_PATH_ENV           "PATH=" HANDLER_PATH

extern const struct upkeep_handler handler_raw_ops;
extern const struct upkeep_handler handler_archive_ops;
extern const struct upkeep_handler handler_file_ops;
/* exec:NAME: begin() needs the program's path, so it has its own entry point; the table's begin fails. */
extern const struct upkeep_handler handler_exec_ops;
int handler_exec_begin(const char *program, const struct upkeep_payload *p, void **ret_state, char *msg,
                       size_t msg_size);

/* snprintf into msg and return r (negative; -EIO for r >= 0), with errno set to -r so "%m" names it. */
int handler_msg(char *msg, size_t msg_size, int r, const char *fmt, ...) _printf_(4, 5);

/* The timeout for programs the handlers run: the default, or in a test build
 * UPKEEP_TEST_HANDLER_TIMEOUT_MS. */
uint64_t handler_timeout_ms(void);
