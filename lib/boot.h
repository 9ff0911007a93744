/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Boot backends: how upkeep tells the bootloader which slot to boot, with boot counting.
 *
 * The model (the same for every backend): an ordered list of bootable slots, each with a number of
 * attempts left. The bootloader boots the first slot in the order that has attempts left, taking one
 * away; a slot that is marked good gets its full attempts back on every confirmed boot. So:
 *   mark_bad(S)  S is not booted (no attempts left, out of the order);
 *   set_try(S)   S goes first with exactly one attempt: if it is not marked good during that boot,
 *                the next boot falls back to the next slot in the order;
 *   mark_good(S) S goes first with its full attempts: it is the primary.
 * Slots are named by their bootname (usually "A" and "B").
 *
 * file:   a plain KEY=VALUE file (BOOT_ORDER="A B", BOOT_A_LEFT=3, BOOT_B_LEFT=0, BOOTED=A), written
 *         atomically; boot_file_simulate_boot() plays the bootloader, for tests and the demo.
 * uboot:  the same variables in the U-Boot environment through fw_printenv/fw_setenv (libubootenv).
 * grub:   ORDER="A B", A_OK=1|0, A_TRY=0|1 in a grubenv through grub-editenv (the grub.cfg side sets
 *         X_TRY=1 when it boots X and skips a slot with X_TRY=1 or X_OK=0).
 * script: a program called as `PROG get-primary`, `PROG set-primary S` (try once), `PROG get-state S`
 *         (prints good|bad), `PROG set-state S good|bad`, `PROG get-current`. */

#include "config.h"
#include "error.h"

#define BOOT_SLOT_NAME_MAX 64
#define BOOT_SLOTS_MAX     8
#define BOOT_ATTEMPTS_MAX  16

typedef enum SlotState {
        SLOT_STATE_GOOD,  /* bootable with attempts left, confirmed */
        SLOT_STATE_TRY,   /* bootable for one attempt, not confirmed yet */
        SLOT_STATE_BAD,   /* not bootable */
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
 * record BOOTED=). Returns the booted slot. */
int boot_file_simulate_boot(const char *state_file, char **ret_booted, UpkErr *err);

const char *slot_state_to_string(SlotState s);
SlotState slot_state_from_string(const char *s);
