/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Human-readable formatting for the command line and the logs: sizes, rates, time spans, timestamps,
 * dates and a progress bar. Pure functions writing into the caller's buffer; each returns that buffer
 * (output that does not fit is cut short, always NUL-terminated). */

#include <stdint.h>

#include "time-util.h"
#include "util.h"

/* Enough for every format_bytes() and format_rate() result: "1023.9 EiB/s". */
#define FORMAT_BYTES_MAX 24
/* Enough for format_timespan(): "213503982d 8h". */
#define FORMAT_TIMESPAN_MAX 32
/* Enough for format_timestamp(): "2026-11-25 10:00:00 +0100" with any zone name. */
#define FORMAT_TIMESTAMP_MAX 64
/* The widest progress bar line format_progress() draws. */
#define FORMAT_PROGRESS_MAX 512
/* The most columns the bar itself takes on a wide terminal. */
#define FORMAT_PROGRESS_BAR_MAX 50

/* The longest piece of a value from outside that a message quotes (format_value()). */
#define FORMAT_VALUE_MAX 64

/* Every control character of `s` (below 0x20, and DEL) replaced by a space, in place, so that text from
 * another program or a file (a boot script's output, a boot environment's values, a program's error
 * output) cannot move the cursor, clear the terminal or start a forged line in a message, LastError or
 * the journal. Returns s. */
char *format_flatten(char *s);
/* At most `size - 1` bytes of `s` ("" for NULL), flattened, in buf. */
char *format_printable(char *buf, size_t size, const char *s);
/* format_printable() of at most FORMAT_VALUE_MAX bytes into a buffer that lives to the end of the
 * enclosing block: for quoting a value in a message. */
#define format_value(s) format_printable((char[FORMAT_VALUE_MAX + 1]){}, FORMAT_VALUE_MAX + 1, (s))

/* "0 B", "1023 B", "1.0 KiB", "12.3 MiB", "4.0 GiB": binary units, one decimal above bytes. */
char *format_bytes(char *buf, size_t size, uint64_t bytes);
/* format_bytes() with "/s". */
char *format_rate(char *buf, size_t size, uint64_t bytes_per_sec);
/* The two largest non-zero units of a span: "0s", "45s", "4m 10s", "3h 5m", "2d 4h". */
char *format_timespan(char *buf, size_t size, uint64_t usec);
/* Local time "2026-11-25 10:00:00 CET" for µs since the epoch (CLOCK_REALTIME). */
char *format_timestamp(char *buf, size_t size, uint64_t usec);

/* Days from today (the UTC date of `now_usec`) to the date "YYYY-MM-DD": 0 on the day itself,
 * negative once it has passed. -EINVAL unless `date` is a valid date in that exact form. */
int date_days_from(const char *date, uint64_t now_usec, int64_t *ret_days);

/* One line of a progress bar, exactly `width` columns wide (padded with spaces, so that it covers a
 * longer line drawn before it when redrawn after '\r'):
 *     "writing   [#########-----------]  45%  12.3 MiB / 27.0 MiB  3.2 MiB/s"
 * `phase` may be empty; `total` 0 means unknown (no bar, no percentage, and the bytes done only when
 * there are some); `rate` 0 is left out. The
 * parts that do not fit are dropped from the right (rate, then sizes); the bar takes the rest, from 10
 * to FORMAT_PROGRESS_BAR_MAX columns, and is left out when even 10 do not fit. `width` is capped to
 * FORMAT_PROGRESS_MAX - 1; `size` must be larger than the width. */
char *format_progress(char *buf, size_t size, unsigned width, const char *phase, uint64_t done,
                      uint64_t total, uint64_t rate);
