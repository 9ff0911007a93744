/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "schedule.h"

void schedule_init(Schedule *s, uint64_t interval_usec, uint64_t jitter_usec)
{
        *s = (Schedule){
                .first_min_usec = SCHEDULE_FIRST_MIN_USEC,
                .first_max_usec = SCHEDULE_FIRST_MAX_USEC,
                .interval_usec = interval_usec ?: 1,
                .jitter_usec = jitter_usec,
                .backoff_min_usec = SCHEDULE_BACKOFF_MIN_USEC,
        };
        if (s->jitter_usec > s->interval_usec)
                s->jitter_usec = s->interval_usec;
}

/* A number in [0, span], from `rnd`. */
static uint64_t pick(uint64_t rnd, uint64_t span)
{
        if (span == UINT64_MAX)
                return rnd;
        return rnd % (span + 1);
}

uint64_t schedule_first_delay(const Schedule *s, uint64_t rnd)
{
        if (s->first_max_usec <= s->first_min_usec)
                return s->first_min_usec;
        return s->first_min_usec + pick(rnd, s->first_max_usec - s->first_min_usec);
}

uint64_t schedule_after_check(Schedule *s, bool success, uint64_t rnd)
{
        uint64_t d;

        if (success) {
                s->failures = 0;
                return s->interval_usec + pick(rnd, s->jitter_usec);
        }
        if (s->failures < UINT32_MAX)
                s->failures++;
        d = s->backoff_min_usec ?: 1;
        for (unsigned i = 1; i < s->failures && d < s->interval_usec; i++)
                d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
        return d < s->interval_usec ? d : s->interval_usec;
}

bool window_contains(unsigned start_min, unsigned end_min, unsigned now_min)
{
        now_min %= SCHEDULE_MINUTES_PER_DAY;
        if (start_min == end_min)
                return true; /* no window: always open */
        if (start_min < end_min)
                return now_min >= start_min && now_min < end_min;
        return now_min >= start_min || now_min < end_min;
}

unsigned window_minutes_until_open(unsigned start_min, unsigned end_min, unsigned now_min)
{
        now_min %= SCHEDULE_MINUTES_PER_DAY;
        if (window_contains(start_min, end_min, now_min))
                return 0;
        return (start_min + SCHEDULE_MINUTES_PER_DAY - now_min) % SCHEDULE_MINUTES_PER_DAY;
}

static const char *const auto_decision_table[_AUTO_DECISION_MAX] = {
        [AUTO_DECISION_INSTALL] = "the update is installed automatically",
        [AUTO_DECISION_HOLD_POLICY] = "held: the policy installs it only on request",
        [AUTO_DECISION_HOLD_DISABLED] = "held: automatic updates are switched off",
        [AUTO_DECISION_HOLD_POSTPONED] = "held: automatic installs are postponed",
        [AUTO_DECISION_HOLD_WINDOW] = "held: outside the maintenance window",
        [AUTO_DECISION_HOLD_ROLLED_BACK] = "held: it is not newer than the update that was rolled back here",
};

DEFINE_STRING_TABLE_TO_STRING(auto_decision, AutoDecision, auto_decision_table)

AutoDecision auto_decide(const AutoInputs *in, uint64_t *ret_retry_usec)
{
        uint64_t retry = 0;
        AutoDecision d = AUTO_DECISION_INSTALL;

        if (!in->auto_update)
                d = AUTO_DECISION_HOLD_DISABLED;
        else
                switch (in->policy) {
                case AUTO_INSTALL_ALL:
                        break;
                case AUTO_INSTALL_SECURITY:
                        if (!in->has_security ||
                            (in->security != SECURITY_TYPE_SECURITY && in->security != SECURITY_TYPE_MIXED))
                                d = AUTO_DECISION_HOLD_POLICY;
                        break;
                case AUTO_INSTALL_NONE:
                case _AUTO_INSTALL_MAX:
                case _AUTO_INSTALL_INVALID:
                        d = AUTO_DECISION_HOLD_POLICY;
                        break;
                }

        if (d == AUTO_DECISION_INSTALL && in->rolled_back)
                d = AUTO_DECISION_HOLD_ROLLED_BACK;
        if (d == AUTO_DECISION_INSTALL && in->postpone_until > in->now_usec) {
                d = AUTO_DECISION_HOLD_POSTPONED;
                retry = in->postpone_until - in->now_usec;
        }
        if (d == AUTO_DECISION_INSTALL && in->has_window &&
            !window_contains(in->window_start_min, in->window_end_min, in->now_min)) {
                unsigned m =
                        window_minutes_until_open(in->window_start_min, in->window_end_min, in->now_min);
                uint64_t sec = (uint64_t)m * 60;

                d = AUTO_DECISION_HOLD_WINDOW;
                /* The window opens at the start of minute `start`: subtract the seconds already gone. */
                sec = sec > in->now_sec ? sec - in->now_sec : 1;
                retry = sec * USEC_PER_SEC;
        }
        if (ret_retry_usec)
                *ret_retry_usec = retry;
        return d;
}

void auto_inputs_set_local_time(AutoInputs *in, time_t now)
{
        struct tm tm;

        if (!localtime_r(&now, &tm)) {
                in->now_min = 0;
                in->now_sec = 0;
                return;
        }
        in->now_min = (unsigned)(tm.tm_hour * 60 + tm.tm_min) % SCHEDULE_MINUTES_PER_DAY;
        in->now_sec = tm.tm_sec >= 0 && tm.tm_sec < 60 ? (unsigned)tm.tm_sec : 0;
}
