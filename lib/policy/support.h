/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Support transparency: what a buyer and a regulator ask of a device (can it receive security updates,
 * how, until when, how updates are verified, what it installed last). Pure logic over the config, the
 * state and the history; "today" is a parameter so that tests can move the calendar. The daemon serves it
 * as GetCapability (upkeep-dbus(7)). */

#include "conf.h"
#include "state.h"
#include "time-util.h"

#define SUPPORT_DATE_LEN DATE_LEN

typedef enum SupportSource {
        SUPPORT_SOURCE_MANIFEST, /* the newest installed manifest's support.end */
        SUPPORT_SOURCE_CONFIG,   /* [policy] support-end */
        SUPPORT_SOURCE_UNKNOWN,
        _SUPPORT_SOURCE_MAX,
        _SUPPORT_SOURCE_INVALID = -EINVAL,
} SupportSource;

typedef struct Capability {
        bool can_receive_updates;               /* false when support ended or the keyring is missing */
        const char *update_mode;                /* "automatic" | "manual" */
        char support_end[SUPPORT_DATE_LEN + 1]; /* "" when unknown */
        SupportSource support_source;
        bool has_days_left;        /* false when the end is unknown */
        int64_t support_days_left; /* negative when past; 0 on the last day */
        bool keyring_present;
        char *verification;        /* one sentence */
        const char *update_source; /* none | tuf | hawkbit | local */
        uint64_t last_check;       /* µs since the epoch, 0 never */
        bool has_last_install;
        char *last_install_version; /* "" when the entry has none */
        uint64_t last_install_time;
        bool last_install_ok;
} Capability;

/* `history` is newest last (as history_load gives it) and may be NULL. `today` is days since
 * 1970-01-01 (UTC), see support_today(). */
int support_capability(const Config *c, const UpkState *s, const HistoryEntry *history, size_t n_history,
                       int64_t today, Capability *ret);
void capability_done(Capability *cap);

/* Today (UTC) in days since 1970-01-01. */
int64_t support_today(void);
/* The journal's warning past the end: "security support for this device ended on D (N days ago): ...".
 * NULL when support has not ended (or the end is unknown, or on OOM). */
char *support_ended_message(const Capability *cap);

const char *support_source_to_string(SupportSource s);
