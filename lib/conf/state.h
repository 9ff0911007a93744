/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the device remembers across reboots and power cuts, under the data dir:
 *   state.json    versions (per slot, installed, the floor), the pending update, boot attempts;
 *   history.json  the last HISTORY_MAX operations with their result and reason.
 * Both are written atomically (temp file, fsync, rename, fsync of the folder). A missing or corrupt
 * file is never fatal: loading falls back to defaults (and keeps the corrupt file aside as *.corrupt)
 * and says so in *ret_warning for the log; a damaged rollback record alone is dropped without the rest
 * (state_load() returns 0 with a warning, keeps the file as it was as state.json.corrupt and writes it
 * back without the record). */

#include "error.h"

#define STATE_FILE_SIZE_MAX   (64u * 1024u)
#define HISTORY_FILE_SIZE_MAX (1024u * 1024u)
#define HISTORY_MAX           100
#define STATE_REASON_MAX      1024

typedef struct StateSlot {
        char *bootname;
        char *version; /* what was installed there, NULL when unknown */
} StateSlot;

/* The last update that was rolled back: its health check failed and its slot was marked bad, or the
 * system came back up on the old slot without confirming it. Kept until an update is confirmed;
 * `acknowledged` once the owner has seen it (AcknowledgeRollback): it is no longer shown, but automatic
 * installs still leave out that version and older ones. In state.json as "rollback" (null when none); a
 * damaged record is dropped alone (state_load() says so and keeps the file as state.json.corrupt). */
typedef struct StateRollback {
        bool set;
        bool acknowledged;
        char *version; /* NULL when unknown (a pending update recovered without one) */
        char *slot;    /* the bootname of its slot */
        char *reason;  /* at most STATE_REASON_MAX bytes */
        uint64_t time; /* CLOCK_REALTIME µs */
} StateRollback;

typedef struct UpkState {
        char *version_floor; /* the highest version ever installed here; NULL when none */
        StateSlot slots[8];
        size_t n_slots;
        /* the update written and activated but not yet confirmed */
        bool pending;
        char *pending_version;
        char *pending_slot;      /* bootname of the target */
        char *pending_from_slot; /* bootname it was installed from */
        uint64_t pending_since;  /* CLOCK_REALTIME µs */
        unsigned boot_attempts;  /* starts seen on the pending slot, or on the old one */
        uint64_t last_check;     /* µs, 0 when never */
        char *support_end;       /* from the newest installed manifest */
        bool auto_update;        /* owner's opt-out switch; default true */
        uint64_t postpone_until; /* µs, 0 when none */
        StateRollback rollback;
} UpkState;

typedef struct HistoryEntry {
        uint64_t time;   /* CLOCK_REALTIME µs */
        char *operation; /* install, confirm, rollback, mark-good, ... */
        char *version;   /* may be NULL */
        char *slot;      /* may be NULL */
        bool ok;
        char *reason; /* may be NULL */
        char *action; /* the update server's action (hawkBit), may be NULL */
} HistoryEntry;

int state_load(const char *data_dir, UpkState **ret, char **ret_warning);
int state_save(const char *data_dir, const UpkState *s, UpkErr *err);
UpkState *state_free(UpkState *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(UpkState *, state_free);

const char *state_slot_version(const UpkState *s, const char *bootname);
int state_set_slot_version(UpkState *s, const char *bootname, const char *version);
void state_clear_pending(UpkState *s);
/* Record a rollback, replacing the one before; a longer reason is cut to STATE_REASON_MAX bytes (at a
 * character boundary). 0 or -ENOMEM (nothing changed). */
int state_set_rollback(UpkState *s, const char *version, const char *slot, const char *reason,
                       uint64_t time);
void state_clear_rollback(UpkState *s);
/* True when `version` is not newer than the version of the rolled-back update (acknowledged or not):
 * automatic installs leave it out. False without a record, or when either version does not parse. */
bool state_rollback_covers(const UpkState *s, const char *version);

/* Append one entry, dropping the oldest beyond HISTORY_MAX. */
int history_append(const char *data_dir, const HistoryEntry *e, UpkErr *err);
/* Newest last. A corrupt history file reads as empty (with *ret_warning set). */
int history_load(const char *data_dir, HistoryEntry **ret, size_t *ret_n, char **ret_warning);
void history_free(HistoryEntry *h, size_t n);
