/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>

#include "process.h"
#include "reboot.h"

static void say(LogFunc log, void *userdata, LogLevel level, const char *fmt, ...) _printf_(4, 5);
static void say(LogFunc log, void *userdata, LogLevel level, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (log)
                log(level, msg, userdata);
}

int reboot_system(const char *why, bool dry_run, LogFunc log, void *userdata)
{
        static const char *const argv[] = { "systemctl", "reboot", NULL };
        _cleanup_free_ char *errtext = NULL;
        UpkErr err = {};
        int r;

        if (dry_run) {
                say(log, userdata, LOG_LEVEL_NOTICE, "not rebooting (--no-reboot): reboot to %s", why);
                return 0;
        }
        say(log, userdata, LOG_LEVEL_NOTICE, "rebooting to %s", why);
        r = process_run(&(ProcessRun){ .argv = argv,
                                       .search_path = true,
                                       .output_max = 64 * 1024,
                                       .timeout_usec = REBOOT_TIMEOUT_USEC,
                                       .what = "systemctl reboot" },
                        NULL, &errtext, &err);
        if (r < 0) {
                say(log, userdata, LOG_LEVEL_ERROR, "cannot reboot: %s; reboot by hand to %s", err.msg, why);
                return r;
        }
        if (r != 0) {
                say(log, userdata, LOG_LEVEL_ERROR, "systemctl reboot exited with status %d: %s", r,
                    process_output_summary(errtext));
                return -EIO;
        }
        return 0;
}
