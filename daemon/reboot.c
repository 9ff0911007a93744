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
        const char *path = getenv("PATH") ?: "/usr/sbin:/usr/bin:/sbin:/bin";
        ProcessResult res = {};
        char how[128];
        int r;

        if (dry_run) {
                say(log, userdata, LOG_LEVEL_NOTICE, "not rebooting (--no-reboot): reboot to %s", why);
                return 0;
        }
        for (const char *p = path; *p;) {
                size_t len = strcspn(p, ":");
                _cleanup_free_ char *exe = strdup_printf("%.*s/systemctl", (int)len, p);

                p += len;
                p += *p == ':';
                if (!exe || access(exe, X_OK) < 0)
                        continue;
                char *argv[] = { exe, (char *)"reboot", NULL };
                say(log, userdata, LOG_LEVEL_NOTICE, "rebooting to %s", why);
                r = process_run(argv, NULL, REBOOT_TIMEOUT_USEC, 4096, &res);
                if (r < 0)
                        return r;
                if (res.exit_status != 0) {
                        process_result_describe(&res, REBOOT_TIMEOUT_USEC, how, sizeof(how));
                        say(log, userdata, LOG_LEVEL_ERROR, "systemctl reboot %s: %s", how, res.output);
                        r = -EIO;
                }
                process_result_done(&res);
                return r;
        }
        say(log, userdata, LOG_LEVEL_ERROR, "cannot reboot: no systemctl in PATH; reboot by hand to %s",
            why);
        return -ENOENT;
}
