/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The installer: a signed bundle in, the inactive A/B slot written and activated for one try, or
 * nothing activated at all. And the other half at the next start: confirm the new system with the
 * health checks, or record the failure and fall back.
 *
 * Order of the install, each step only when the previous one succeeded:
 *   1. open the bundle: signature, then manifest (bundle.h);
 *   2. compatible, version (newer than installed, not under the floor, min_version);
 *   3. booted slot, target slot per class, each payload's handler found and its size fits;
 *   4. the target marked bad in the boot environment (from here the bootloader never picks it);
 *   5. every payload streamed through its handler, hashed as it streams, finished (fsync);
 *   6. every handler committed; the pending update recorded in the state (atomically);
 *   7. the target set to "try once" in the boot environment.
 * A power cut anywhere leaves the boot environment pointing at the old slot until step 7, which is a
 * single write of the boot environment. */

#include "boot.h"
#include "bundle.h"
#include "delta-plan.h"
#include "conf.h"
#include "state.h"

typedef enum InstallPhase {
        INSTALL_PHASE_VERIFYING,
        INSTALL_PHASE_CHECKING,
        INSTALL_PHASE_PREPARING,
        INSTALL_PHASE_WRITING,
        INSTALL_PHASE_ACTIVATING,
        INSTALL_PHASE_DONE,
        _INSTALL_PHASE_MAX,
        _INSTALL_PHASE_INVALID = -EINVAL,
} InstallPhase;

typedef struct InstallOptions {
        bool allow_downgrade; /* the caller asks; the config must allow it too */
        /* Called at every phase change and after every block written; may be NULL. */
        void (*progress)(void *userdata, InstallPhase phase, uint64_t done, uint64_t total);
        /* Polled between blocks; returning true cancels the install (-ECANCELED). May be NULL. */
        bool (*cancelled)(void *userdata);
        void *userdata;
        /* install_bundle_path(): refuse what is not a regular file (a FIFO or a device could block the
         * read for good), without waiting for a writer; the daemon sets it, the offline verb does not. */
        bool regular_file_only;
        /* The update server's action this install carries out (hawkBit), for the history; may be NULL. */
        const char *action;
        /* When given and true for a failure, the failure is not written to the history: the caller tries
         * the same install again (a delta that falls back to the whole download). */
        bool (*retried)(int r, const UpkErr *err);
} InstallOptions;

typedef struct InstallResult {
        char *version; /* the version installed */
        char *slot;    /* the bootname of the slot now set to try once */
        bool reboot;   /* the policy wants a reboot now */
} InstallResult;

void install_result_done(InstallResult *r);

/* The boot backend over the configured slots' bootnames (UPK_ERR_CONFIG when none is configured). */
int install_open_boot(const Config *c, BootBackend **ret, UpkErr *err);
/* The booted slot's bootname: [boot] booted=, else upkeep.slot= on the kernel command line, else
 * what the boot backend says. */
int install_find_booted(const Config *c, BootBackend *boot, char **ret, UpkErr *err);
/* The running system's version: the version the state recorded for the booted slot, else the
 * version file (VERSION_ID= of an os-release file, or the whole first line of a plain file). */
int install_current_version(const Config *c, const UpkState *s, const char *booted, char **ret, UpkErr *err);

/* A state without a pending update while the boot backend marks a slot to try (state.json was damaged
 * or lost while an update waited for its reboot or its confirmation): fill in the pending update from
 * the boot backend (the slot), the booted slot (where it came from) and the history (its version, when
 * the newest entry for that slot is a successful install), and say so in the log. 1 when recovered, 0
 * when there was nothing to recover, -ENOMEM. Nothing is written. */
int install_recover_pending(const Config *c, BootBackend *boot, const char *booted, UpkState *s);

/* The parsers behind those two, on text already read (changed in place): upkeep.slot= of a kernel
 * command line (1 and the value, 0 when absent), and the version of an os-release or plain version file. */
int install_parse_cmdline_slot(char *text, char **ret);
int install_parse_version_file(char *text, const char *path, char **ret, UpkErr *err);

int install_bundle_path(const Config *c, const char *path, const InstallOptions *o, InstallResult *ret,
                        UpkErr *err);
int install_bundle_next(const Config *c, BundleNextFunc next, void *userdata, const InstallOptions *o,
                        InstallResult *ret, UpkErr *err);

/* A delta install from a URL (upkeep-bundle(5), Deltas; [install] delta): the caller fetches byte ranges
 * of the bundle file. Blocking; both may fail with a UpkErr. */
typedef struct InstallDeltaIo {
        /* Bytes [offset, offset + size) into `buf`; the first call also gives the file's size, and when
         * the file ends before offset + size (but after offset) reads up to its end. A server that
         * ignores Range requests: -EOPNOTSUPP. */
        int (*read_range)(void *userdata, uint64_t offset, size_t size, void *buf, uint64_t *ret_total,
                          UpkErr *err);
        /* The bytes of `n` ranges, one after the other, into `buf` of `size` (their sum) bytes. */
        int (*read_ranges)(void *userdata, const DeltaRange *ranges, size_t n, void *buf, size_t size,
                           UpkErr *err);
        void *userdata;
        const uint8_t *manifest_sha256; /* TUF's custom.manifest_sha256 the manifest must match; or NULL */
        const char *name;               /* the TUF target's name, for that message */
} InstallDeltaIo;

typedef struct InstallDeltaStats {
        char slot[16];          /* the booted slot the blocks came from (named apart: the bootname) */
        char slots[256];        /* each of them as "CLASS.NAME", ", " between, in payload order */
        unsigned n_slots;       /* how many */
        uint64_t file_size;     /* the bundle file's */
        uint64_t head_bytes;    /* manifest, signature and index, fetched */
        uint64_t payload_bytes; /* the payloads' installed sizes */
        uint64_t planned_local_blocks;
        uint64_t fetch_planned; /* bytes of the ranges to fetch */
        uint64_t local_bytes, fetched_bytes, zero_bytes, refetched_chunks, refetched_bytes;
        /* the booted slots' block tables: computed for this install, or taken from the data folder */
        unsigned tables_computed, tables_cached;
        bool reached_install;
} InstallDeltaStats;

/* Progress reports count the bytes fetched of those planned while writing. Fails with -EOPNOTSUPP before
 * anything is written when a delta is not possible (format 1, no payload raw into an A/B slot whose booted
 * slot can be read, a server that ignores Range), and with -ESTALE while writing when more than a quarter
 * of the bundle file had to be fetched again because the booted slots' blocks did not match their
 * tables (the tables are removed): install_delta_falls_back() says when the caller should install from
 * the whole bundle instead (also after a network failure: the slot is not activated). */
int install_bundle_delta(const Config *c, const InstallDeltaIo *io, const InstallOptions *o,
                         InstallResult *ret, InstallDeltaStats *ret_stats, UpkErr *err);
bool install_delta_falls_back(int r, const UpkErr *err);
/* Cheap, without the network: [install] delta is on and a slot with the bootname `booted` can be read
 * and is not empty (there may be something to reuse). */
bool install_delta_possible(const Config *c, const char *booted);

typedef struct InstallPrepareStats {
        unsigned computed; /* tables computed and saved now */
        unsigned cached;   /* tables that were already there and valid */
        uint64_t blocks;   /* the blocks hashed for those computed */
        double seconds;    /* the time spent computing them */
        char slots[256];   /* the slots whose tables were computed: "rootfs.A, appfs.A" (cut when longer) */
} InstallPrepareStats;

/* Before a delta needs them: the block table of every slot with the bootname `booted` that a raw payload
 * could reuse blocks of (a non-empty file or block device that can be read; one slot per class), at the
 * default block size of a bundle's payload (BLOCK_SIZE_DEFAULT; a bundle with another block size gets its
 * table computed by its install), loaded from the data folder or else computed and saved there. Does
 * nothing when [install] delta is off or `booted` is NULL. `cancelled` (may be NULL) is polled between
 * reads of 1 MiB: -ECANCELED then, and the slot's table is not saved (a saved table is always whole: it
 * is written to a temporary file and renamed). A slot that fails to be read fails the call with its
 * error naming the slot (the other slots are done all the same). Blocking: for a worker thread. */
int install_delta_prepare_tables(const Config *c, const char *booted, bool (*cancelled)(void *userdata),
                                 void *userdata, InstallPrepareStats *ret, UpkErr *err);

typedef enum ConfirmOutcome {
        CONFIRM_NOTHING_PENDING, /* no update waited for confirmation */
        CONFIRM_GOOD,            /* the new system passed its health checks and is now primary */
        CONFIRM_FAILED,          /* a check failed: the slot is marked bad, the fallback is armed */
        CONFIRM_FELL_BACK,       /* the device came back up on the old slot: recorded as failed */
        _CONFIRM_OUTCOME_MAX,
        _CONFIRM_OUTCOME_INVALID = -EINVAL,
} ConfirmOutcome;

typedef struct ConfirmResult {
        ConfirmOutcome outcome;
        char *version;
        char *slot;
        char *reason; /* for FAILED and FELL_BACK */
        bool reboot;  /* FAILED and the policy wants the reboot back */
} ConfirmResult;

void confirm_result_done(ConfirmResult *r);

/* At every start: confirm or fail a pending update (runs the health checks when the booted slot is
 * on its try). Also re-arms a confirmed slot's boot attempts; after a fallback (the pending update's
 * slot is marked bad) the booted good slot is confirmed the same way, which clears the try marker the
 * bootloader left on it (grub's <S>_TRY=1) and gives back the attempt it took. */
int install_confirm(const Config *c, ConfirmResult *ret, UpkErr *err);
/* By hand: the booted slot is good (as if the health checks passed). An update installed into another
 * slot and waiting for its reboot is cancelled first (install_cancel_pending()). */
int install_mark_good(const Config *c, UpkErr *err);
/* By hand: make the other slot primary again (it must not be marked bad); returns its bootname. While
 * an update waits for its reboot it cancels that update instead (*ret_cancelled true): the booted slot
 * stays primary and is returned. */
int install_rollback(const Config *c, char **ret_slot, bool *ret_cancelled, UpkErr *err);
/* Cancel the update that waits for its reboot: its slot is marked bad (try marker gone), the booted
 * slot stays good and primary, the pending record is cleared and the history says "cancel". Returns
 * the cancelled version in *ret_version (may be NULL); -ENOENT when no update waits for a reboot. */
int install_cancel_pending(const Config *c, char **ret_version, UpkErr *err);

const char *install_phase_to_string(InstallPhase p);
