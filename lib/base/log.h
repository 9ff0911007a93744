/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The library reports through return values and UpkErr. The one exception is news that is not an
 * error of the call at hand (a corrupt state file recovered from, say): it goes to a log hook the
 * program sets (the daemon: the journal; the tools: stderr). Without a hook it is dropped. */

#include "util.h"

typedef enum LogLevel {
        LOG_LEVEL_ERROR,
        LOG_LEVEL_WARNING,
        LOG_LEVEL_NOTICE,
        LOG_LEVEL_INFO,
        LOG_LEVEL_DEBUG, /* what only someone chasing a problem wants: the journal keeps it at priority 7 */
        _LOG_LEVEL_MAX,
        _LOG_LEVEL_INVALID = -EINVAL,
} LogLevel;

typedef void (*LogFunc)(LogLevel level, const char *message, void *userdata);

void upk_log_set_func(LogFunc func, void *userdata);
void upk_log(LogLevel level, const char *fmt, ...) _printf_(2, 3);
