/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static LogFunc log_func;
static void *log_userdata;

void upk_log_set_func(LogFunc func, void *userdata)
{
        log_func = func;
        log_userdata = userdata;
}

void upk_log(LogLevel level, const char *fmt, ...)
{
        char msg[2048];
        va_list ap;

        if (!log_func)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_func(level, msg, log_userdata);
}
