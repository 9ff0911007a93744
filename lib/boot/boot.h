/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Boot backends: how upkeep tells the bootloader which slot to boot, with boot counting.
 *
 * The model (the same for every backend): an ordered list of bootable slots, each with a number of
 * attempts left. The bootloader boots the first slot in the order that has attempts left, taking one
 * away; a slot that is marked good gets its full attempts back on every confirmed boot (the daemon
 * calls mark_good on every confirmed start, so a good slot never runs dry). So:
 *   mark_bad(S)  S is not booted: no attempts left, no try marker, moved to the END of the order (the
 *                order keeps listing every slot);
 *   set_try(S)   S goes first with exactly one attempt and a try marker: if it is not marked good
 *                during that boot, the next boot falls back to the next slot in the order;
 *   mark_good(S) S goes first with its full attempts ([boot] attempts, default 3; grub: see below),
 *                try marker cleared: it is the primary.
 *   get_state(S) try: S carries the try marker (set_try was called, neither mark_good nor mark_bad
 *                since), whether its one attempt is still ahead, running, or spent and fallen back;
 *                the daemon decides by comparing the booted slot with the slot it set to try, then calls
 *                mark_good or mark_bad. bad: no attempts left or not in the order. good: otherwise.
 *   get_primary  the slot the next boot takes; -ENOENT ("no bootable slot") when none has attempts.
 * Slots are named by their bootname: 1..64 of [A-Za-z0-9_] (it becomes part of variable names),
 * usually "A" and "B". A slot name that is not one of the backend's slots is -ENOENT/UPK_ERR_CONFIG.
 * A state that was never written (missing file, unset BOOT_ORDER or ORDER) reads as: the order of the
 * slots given to boot_backend_new(), the first slot good with full attempts, the others bad (0 left).
 * Malformed values fail with -EBADMSG/UPK_ERR_CONFIG naming the file and line or the variable.
 * Programs (fw_*, grub-editenv, the script) run without a shell, in their own process group, with
 * a timeout of 10 s (in a test build UPKEEP_TEST_BOOT_TIMEOUT_MS may shorten it) after which the group
 * is killed (-ETIME); a missing program is -ENOENT/UPK_ERR_CONFIG, a failing one -EIO/UPK_ERR_IO with
 * its stderr.
 *
 * file:   a plain KEY=VALUE file: BOOT_ORDER="A B" (quotes optional), BOOT_<S>_LEFT=N (0..16),
 *         BOOT_<S>_TRY=1 (the try marker; absent or 0 otherwise), BOOTED=<S> (written by the simulated
 *         bootloader only; absent: get_current is -ENODATA). Blank lines and #-comments are allowed;
 *         keys are [A-Za-z_][A-Za-z0-9_]*, no spaces around '=', no duplicate keys; unknown keys and
 *         comments are kept. At most 64 KiB, replaced atomically (write_file_atomic).
 *         boot_file_simulate_boot() plays the bootloader: the first slot in BOOT_ORDER with attempts
 *         left loses one and becomes BOOTED; when none has any, the first slot in the order without a
 *         try marker (else the first) is booted and no count changes. It takes the slots from
 *         BOOT_ORDER; a missing file means "A B" with A at 3 attempts.
 * uboot:  the same variables (BOOT_ORDER, BOOT_<S>_LEFT, BOOT_<S>_TRY; BOOTED only read, when the boot
 *         script records it) in the U-Boot environment: read with `fw_printenv [-c CONFIG] -n VAR...`,
 *         written with ONE `fw_setenv [-c CONFIG] -s -` per update (one environment write, atomic with
 *         a redundant environment) and read back to check. An unset and an empty variable are the
 *         same. The environment must be valid (or /etc/u-boot-initial-env present): libubootenv
 *         refuses to read a bad CRC otherwise.
 * grub:   ORDER="A B", <S>_OK=1|0, <S>_TRY=0|1, <S>_PENDING=0|1 in a grubenv through grub-editenv; every
 *         update writes all of them with ONE `grub-editenv COPY set ...` on a copy renamed over the
 *         grubenv (a missing one is created with `grub-editenv create`; a symbolic link is written
 *         through: the copy is made next to the file it names and renamed over that file). grub.cfg
 *         (contrib/grub/upkeep.cfg) boots the first slot in ORDER with OK=1 and TRY=0 and sets its
 *         TRY=1; else the first with OK=1 and PENDING=0; else the first in ORDER. So every slot has ONE
 *         attempt per confirmation ([boot] attempts does not apply). mark_bad: OK=0, TRY=0, PENDING=0,
 *         last in ORDER; set_try: first, OK=1, TRY=0, PENDING=1; mark_good: first, OK=1, TRY=0,
 *         PENDING=0; get_state: PENDING=1 try, OK=0 (or not in ORDER) bad, else good; get_primary: what
 *         the grub.cfg picks next (rules 1 and 2); get_current: always -ENODATA (grub does not record
 *         it: use the kernel command line).
 * script: a program called as `PROG get-primary` (prints a slot), `PROG set-primary S` (= set_try),
 *         `PROG get-state S` (prints good|bad|try on its first line), `PROG set-state S good|bad`
 *         (= mark_good / mark_bad: "good" must also make S the primary), `PROG get-current` (prints a
 *         slot, or exits 3 when it is not known: -ENODATA). Exit 0 is success. It gets
 *         UPKEEP_BOOT_SLOTS="A B", UPKEEP_BOOT_ATTEMPTS=N and, when [boot] state-file is set,
 *         UPKEEP_BOOT_STATE_FILE in its environment; stdout is limited to 4 KiB.
 *         contrib/boot-script-example.sh implements the file backend's semantics. */

#include "conf.h"
#include "error.h"

#define BOOT_SLOT_NAME_MAX 64
#define BOOT_SLOTS_MAX     8

typedef enum SlotState {
        SLOT_STATE_GOOD, /* bootable with attempts left, confirmed */
        SLOT_STATE_TRY,  /* bootable for one attempt, not confirmed yet */
        SLOT_STATE_BAD,  /* not bootable */
        _SLOT_STATE_MAX,
        _SLOT_STATE_INVALID = -EINVAL,
} SlotState;

typedef struct BootBackend BootBackend;

/* `slots` are the bootnames the backend manages (e.g. {"A", "B"}). */
int boot_backend_new(const Config *c, char *const *slots, size_t n_slots, BootBackend **ret, UpkErr *err);
BootBackend *boot_backend_free(BootBackend *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(BootBackend *, boot_backend_free);

int boot_mark_bad(BootBackend *b, const char *slot, UpkErr *err);
int boot_set_try(BootBackend *b, const char *slot, UpkErr *err);
int boot_mark_good(BootBackend *b, const char *slot, UpkErr *err);
/* The slot the bootloader will boot next (first in the order with attempts left). */
int boot_get_primary(BootBackend *b, char **ret, UpkErr *err);
int boot_get_state(BootBackend *b, const char *slot, SlotState *ret, UpkErr *err);
/* The slot that is booted now, if the backend knows (-ENODATA otherwise). */
int boot_get_current(BootBackend *b, char **ret, UpkErr *err);

/* file backend only: play the bootloader once on the state file (pick the slot, take an attempt,
 * record BOOTED=, see above). Returns the booted slot in *ret_booted (may be NULL). */
int boot_file_simulate_boot(const char *state_file, char **ret_booted, UpkErr *err);

const char *slot_state_to_string(SlotState s);
SlotState slot_state_from_string(const char *s);
