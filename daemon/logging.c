/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include "logging.h"

#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define LOG_LINE_MAX   2048

static bool use_journal;

void log_open(void)
{
        use_journal = access(JOURNAL_SOCKET, W_OK) >= 0;
}

static int level_to_priority(LogLevel level)
{
        switch (level) {
        case LOG_LEVEL_ERROR:
                return LOG_ERR;
        case LOG_LEVEL_WARNING:
                return LOG_WARNING;
        case LOG_LEVEL_NOTICE:
                return LOG_NOTICE;
        case LOG_LEVEL_INFO:
                return LOG_INFO;
        case LOG_LEVEL_DEBUG:
                return LOG_DEBUG;
        case _LOG_LEVEL_MAX:
        case _LOG_LEVEL_INVALID:
                break;
        }
        return LOG_INFO;
}

static void log_stderr(LogLevel level, const LogFields *f, const char *msg)
{
        const char *prefix = level == LOG_LEVEL_ERROR     ? "error: "
                             : level == LOG_LEVEL_WARNING ? "warning: "
                             : level == LOG_LEVEL_DEBUG   ? "debug: "
                                                          : "";
        char fields[LOG_LINE_MAX] = "";

        if (f && (f->phase || f->version || f->slot || f->action))
                snprintf(fields, sizeof(fields), " [%s%s%s%s%s%s%s%s]", f->phase ? "UPKEEP_PHASE=" : "",
                         f->phase ?: "",
                         f->version ? (f->phase ? " UPKEEP_VERSION=" : "UPKEEP_VERSION=") : "",
                         f->version ?: "",
                         f->slot ? (f->phase || f->version ? " UPKEEP_SLOT=" : "UPKEEP_SLOT=") : "",
                         f->slot ?: "",
                         f->action ? (f->phase || f->version || f->slot ? " UPKEEP_HAWKBIT_ACTION="
                                                                        : "UPKEEP_HAWKBIT_ACTION=")
                                   : "",
                         f->action ?: "");
        /* One write per line, so that lines from two threads do not mix. */
        fprintf(stderr, "upkeepd: %s%s%s\n", prefix, msg, fields);
}

static void log_journal(LogLevel level, const LogFields *f, const char *msg)
{
        char buf[7][LOG_LINE_MAX + 32];
        struct iovec iov[7];
        size_t n = 0;

#define FIELD(...)                                                                                        \
        do {                                                                                              \
                int _l = snprintf(buf[n], sizeof(buf[n]), __VA_ARGS__);                                   \
                iov[n] = (struct iovec){ buf[n],                                                          \
                                         (size_t)_l < sizeof(buf[n]) ? (size_t)_l : sizeof(buf[n]) - 1 }; \
                n++;                                                                                      \
        } while (0)
        FIELD("MESSAGE=%s", msg);
        FIELD("PRIORITY=%d", level_to_priority(level));
        FIELD("SYSLOG_IDENTIFIER=upkeepd");
        if (f && f->phase)
                FIELD("UPKEEP_PHASE=%s", f->phase);
        if (f && f->version)
                FIELD("UPKEEP_VERSION=%s", f->version);
        if (f && f->slot)
                FIELD("UPKEEP_SLOT=%s", f->slot);
        if (f && f->action)
                FIELD("UPKEEP_HAWKBIT_ACTION=%s", f->action);
#undef FIELD
        /* journald went away or refused it: the line goes to stderr, with its level and fields. */
        if (sd_journal_sendv(iov, (int)n) < 0)
                log_stderr(level, f, msg);
}

/* Leaves errno as it found it, so a caller may log and then still look at errno. */
_printf_(3, 0) static void log_fieldsv(LogLevel level, const LogFields *f, const char *fmt, va_list ap)
{
        char msg[LOG_LINE_MAX];
        int saved_errno = errno;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (use_journal)
                log_journal(level, f, msg);
        else
                log_stderr(level, f, msg);
        errno = saved_errno;
}

void log_fields(LogLevel level, const LogFields *f, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        log_fieldsv(level, f, fmt, ap);
        va_end(ap);
}

int log_errno(LogLevel level, int r, const char *fmt, ...)
{
        va_list ap;

        if (r >= 0)
                r = -EIO;
        errno = -r;
        va_start(ap, fmt);
        log_fieldsv(level, NULL, fmt, ap);
        va_end(ap);
        return r;
}

void log_hook(LogLevel level, const char *message, void *userdata)
{
        log_fields(level, NULL, "%s", message);
}
