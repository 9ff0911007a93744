/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The service's log: the journal with structured fields (UPKEEP_PHASE=, UPKEEP_VERSION=, UPKEEP_SLOT=)
 * when /run/systemd/journal/socket is writable at log_open(), else one line per message on stderr:
 *   upkeepd: [error: |warning: |debug: ]MESSAGE [UPKEEP_PHASE=... UPKEEP_VERSION=... UPKEEP_SLOT=...]
 * A message the journal does not take (journald stopped) goes to stderr in that format too.
 * Thread-safe (the library's log hook may fire in the worker). */

#include "log.h"

typedef struct LogFields {
        const char *phase; /* NULL: no field */
        const char *version;
        const char *slot;
        const char *action; /* the update server's action (UPKEEP_HAWKBIT_ACTION=) */
} LogFields;

void log_open(void);
void log_fields(LogLevel level, const LogFields *f, const char *fmt, ...) _printf_(3, 4);
#define log_msg(level, ...) log_fields(level, NULL, __VA_ARGS__)
/* log_msg() with errno set to -r, so "%m" in `fmt` names the error; returns r (as systemd's
 * log_*_errno): return log_errno(LOG_LEVEL_ERROR, r, "cannot add the bus object: %m"); */
int log_errno(LogLevel level, int r, const char *fmt, ...) _printf_(3, 4);
/* For upk_log_set_func(). */
void log_hook(LogLevel level, const char *message, void *userdata);
