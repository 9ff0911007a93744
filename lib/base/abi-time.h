/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Calls into library APIs that take or return a time_t, behind functions that take an int64_t.
 *
 * upkeep builds its own code with a 64-bit time_t everywhere (-D_TIME_BITS=64), also on 32-bit ARM.
 * A system's libraries may still use a 32-bit time_t there (Debian 12 armhf, Buildroot without
 * BR2_TIME_BITS_64): a time_t handed straight to such a library lands in the wrong registers. abi-time.c
 * is compiled with the time_t the system's libraries have (UPK_SYSTEM_TIME_BITS, from meson), so every
 * library call with a time_t in its signature goes through here. tools/check-time-abi.py fails the unit
 * suite when one is called anywhere else. */

#include <stdint.h>

struct archive_entry;

/* archive_entry_set_mtime(e, sec, 0). -ERANGE when the system's time_t cannot hold `sec`. */
int upk_archive_entry_set_mtime(struct archive_entry *e, int64_t sec);
