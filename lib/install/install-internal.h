/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to lib/install: what the installer's files share. slot.c knows the slots (the configured
 * bootnames, the booted one, the other one of a class, how much a slot holds); operation.c holds what
 * every operation does around its work (the lock and the state, the history line) and the test hook
 * that kills the installer at named points; install.c and confirm.c use both. */

#include "install.h"

/* slot.c */
size_t install_slot_bootnames(const Config *c, char **names, size_t max);
const SlotConfig *install_other_slot(const Config *c, const char *class, const char *booted);
int install_slot_capacity(const SlotConfig *s, uint64_t *ret, UpkErr *err);
/* Add slot `s` (once) to the slots a delta took blocks from: st->slots lists them as CLASS.NAME, ", "
 * between, ending with ", ..." when the rest do not fit; st->n_slots counts them. */
void install_delta_stats_add_slot(InstallDeltaStats *st, const SlotConfig *s);

/* target.c: may payload `payload` write to `target` (its manifest "target")? -EPERM/UPK_ERR_COMPATIBLE
 * naming the payload, the target and what it would hit (a slot, upkeep's data, configuration, keyring,
 * handlers or health checks, the boot state), or when it is outside [install] allowed-targets. */
int install_check_target(const Config *c, const char *payload, const char *target, UpkErr *err);
/* The whole disk that holds the partition `dev`, from sysfs (`sysfs` is its root: "/sys"): 0 in *ret when
 * `dev` is not a partition or sysfs does not say. -ENOMEM only. */
int install_block_whole_disk(const char *sysfs, dev_t dev, dev_t *ret);

/* install.c: the install of an opened bundle (the caller keeps it). */
int install_bundle_opened(const Config *c, Bundle *b, const InstallOptions *o, InstallResult *ret,
                          UpkErr *err);

/* install-delta.c: the slot is about to be written: its cached block table goes. */
void install_delta_forget_slot(const Config *c, const SlotConfig *s);
/* The name of the slot's cached block table in the data folder: "blocks-CLASS-NAME.table". */
char *install_delta_table_name(const SlotConfig *s);
/* A slot a raw payload of its class could reuse blocks of: open read-only in *ret_fd, with its size.
 * -errno when it cannot be opened, -ENOTBLK when neither a regular file nor a block device, -ENODATA when
 * empty. */
int install_delta_open_slot(const SlotConfig *s, int *ret_fd, uint64_t *ret_size);
/* The block table of slot `s` (open in `fd`, `size` bytes) at `block_size`: the one saved in the data
 * folder when it was made over the same slot content as far as its key sees (*ret_computed false), else
 * computed (block_table_compute(), `cancelled` polled between reads) and saved (*ret_computed true). The
 * table is only a cache: a failure to save it is not the call's, but is told in `save_err` (may be NULL;
 * untouched when saved). */
int install_delta_slot_table(const Config *c, const SlotConfig *s, int fd, uint64_t size,
                             uint32_t block_size, bool (*cancelled)(void *userdata), void *userdata,
                             BlockTable **ret, bool *ret_computed, UpkErr *save_err, UpkErr *err);

/* operation.c */
void install_crash_point(const char *name);
bool install_crash_write_at(uint64_t *ret);
/* An install's entry also names the update server's action of `o` (may be NULL). */
void install_history_record_install(const Config *c, const InstallOptions *o, const char *version,
                                    const char *slot, bool ok, const char *reason);
void install_history_record(const Config *c, const char *op, const char *version, const char *slot, bool ok,
                            const char *reason);
int install_begin_operation(const Config *c, int *ret_lock, UpkState **ret_state, UpkErr *err);
