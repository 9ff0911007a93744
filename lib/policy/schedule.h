/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* When the daemon looks for updates and whether it may install one by itself: pure functions of their
 * inputs (times and random numbers are passed in), so the policy is tested without clocks or a bus.
 *
 *   checks:   the first soon after the start (a random delay in [first_min, first_max]); then every
 *             poll interval plus a random jitter in [0, jitter]; after a failed check an exponential
 *             backoff from backoff_min, doubling, capped at the poll interval; a success resets it.
 *   installs: [policy] auto-install all | security (the manifest's security.type is security or
 *             mixed) | none (announce only); the owner's AutoUpdate switch off counts as none; no
 *             automatic install before postpone_until nor outside the maintenance window; never the
 *             version that was rolled back on the device, nor an older one (a newer one goes in). */

#include <time.h>

#include "conf.h"
#include "format.h"
#include "manifest.h"

#define SCHEDULE_FIRST_MIN_USEC   (10 * USEC_PER_SEC)
#define SCHEDULE_FIRST_MAX_USEC   (60 * USEC_PER_SEC)
#define SCHEDULE_BACKOFF_MIN_USEC (60 * USEC_PER_SEC)
#define SCHEDULE_MINUTES_PER_DAY  (24u * 60u)

typedef struct Schedule {
        uint64_t first_min_usec, first_max_usec;
        uint64_t interval_usec; /* the poll interval, > 0 */
        uint64_t jitter_usec;   /* at most interval_usec */
        uint64_t backoff_min_usec;
        unsigned failures; /* consecutive failed checks */
} Schedule;

/* Defaults from the [source] poll-interval and jitter. */
void schedule_init(Schedule *s, uint64_t interval_usec, uint64_t jitter_usec);

/* `rnd` is any random 64-bit number; the results are delays from now, in µs. */
uint64_t schedule_first_delay(const Schedule *s, uint64_t rnd);
/* After a check: success resets the backoff and gives interval + jitter; a failure counts and gives the
 * backoff (backoff_min << (failures - 1), at most the interval). */
uint64_t schedule_after_check(Schedule *s, bool success, uint64_t rnd);

/* The maintenance window [start, end) in minutes after local midnight; end < start wraps midnight. */
bool window_contains(unsigned start_min, unsigned end_min, unsigned now_min);
/* Minutes from `now_min` until the window next opens (0 when inside). */
unsigned window_minutes_until_open(unsigned start_min, unsigned end_min, unsigned now_min);

typedef enum AutoDecision {
        AUTO_DECISION_INSTALL,
        AUTO_DECISION_HOLD_POLICY,      /* auto-install = none, or security and not a security update */
        AUTO_DECISION_HOLD_DISABLED,    /* the owner switched automatic updates off */
        AUTO_DECISION_HOLD_POSTPONED,   /* before postpone_until */
        AUTO_DECISION_HOLD_WINDOW,      /* outside the maintenance window */
        AUTO_DECISION_HOLD_ROLLED_BACK, /* not newer than the update rolled back here */
        _AUTO_DECISION_MAX,
        _AUTO_DECISION_INVALID = -EINVAL,
} AutoDecision;

typedef struct AutoInputs {
        AutoInstall policy;
        bool auto_update;  /* state.auto_update */
        bool has_security; /* the offer's manifest is known and has a security object */
        SecurityType security;
        uint64_t now_usec; /* CLOCK_REALTIME */
        uint64_t postpone_until;
        bool has_window;
        unsigned window_start_min, window_end_min;
        unsigned now_min; /* local minutes after midnight */
        unsigned now_sec; /* seconds into the current minute */
        bool rolled_back; /* the offer is not newer than the update that was rolled back here */
} AutoInputs;

/* May the offered update be installed now? For the holds that end by themselves (postpone, window),
 * *ret_retry_usec (optional) is the delay until they end; otherwise 0. */
AutoDecision auto_decide(const AutoInputs *in, uint64_t *ret_retry_usec);
/* A sentence for the log: "automatic installs are postponed", ... */
const char *auto_decision_to_string(AutoDecision d);

/* Fill now_min and now_sec of `in` from `now` in local time (localtime_r). */
void auto_inputs_set_local_time(AutoInputs *in, time_t now);
