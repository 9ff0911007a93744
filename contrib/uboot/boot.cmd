# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The U-Boot side of upkeep's "uboot" boot backend, for slots A and B: the source of a boot.scr
# (`mkimage -A ARCH -T script -C none -d boot.cmd boot.scr`). As it is, it boots the qemu-x86 machine
# of upkeep's VM tests (tests/vm/mkimage.py); for a board, change the settings below and the last
# lines (how the kernel is loaded and started).
#
# upkeep keeps these variables in the U-Boot environment and changes them with fw_setenv from Linux
# (lib/boot/boot.h has the model):
#
#   BOOT_ORDER    the slots in the order to try them, "A B" or "B A"
#   BOOT_<S>_LEFT boot attempts left for slot S, 0 to 16 (unset: 0)
#   BOOT_<S>_TRY  1 while slot S is an update on trial (set_try), unset otherwise
#   BOOTED        the slot this script booted: written here, only read by upkeep
#
# upkeep writes them so: a confirmed slot goes first with [boot] attempts attempts (default 3) and no
# try marker; a freshly installed slot goes first with 1 attempt and BOOT_<S>_TRY=1; a slot marked
# bad gets 0 attempts, no try marker and goes last. This script picks the slot to boot:
#
#   1. the first slot in BOOT_ORDER with attempts left: it loses one, and the new count is written
#      back BEFORE the kernel starts. A slot on trial (1 attempt) is therefore booted once; if the
#      system it starts is not confirmed (upkeep gives a confirmed slot its attempts back on every
#      start), the next boot takes the next slot in the order: the fallback;
#   2. else (no slot has attempts left) the first slot in BOOT_ORDER without a try marker: an
#      update that never got confirmed is not retried while an older slot exists;
#   3. else the first slot in BOOT_ORDER (a device always boots something). In 2 and 3 no count
#      changes.
#
# An environment without BOOT_ORDER (never written by upkeep) reads as BOOT_ORDER="A B" with slot A
# at 3 attempts (unless BOOT_A_LEFT is set) and slot B at 0, as upkeep reads it. An environment that
# cannot be read (missing, or a bad CRC: torn by a power cut during a write of its single copy) gives
# both slots their attempts, A first: the device comes up on A, or on B when A does not start; upkeep
# then sees both slots as good, the booted one first (its state.json still knows the versions), except
# that a booted slot still holding an update rolled back on it is marked bad and left with a reboot. The
# kernel is told the slot on its command line (upkeep.slot=S), which upkeep prefers to BOOTED.
#
# Where the environment lives: U-Boot has none of its own on qemu-x86 ("Loading Environment from
# nowhere"), so it is a file, uboot.env, on the first (FAT) partition, in the format of fw_setenv
# with a single copy: a CRC-32 and the variables, 0x4000 bytes. In Linux that partition is mounted at
# /boot/uboot and /etc/fw_env.config says "/boot/uboot/uboot.env 0x0 0x4000"; upkeep.conf has
# "[boot] backend = uboot" and "uboot-config = /etc/fw_env.config". This script reads only upkeep's
# variables from the file and writes back only them: keep nothing else in it. A board whose U-Boot
# has its own environment (env in flash or eMMC, redundant: power-cut safe) drops the load/import and
# export/fatwrite steps and calls `saveenv` instead, with the same fw_env.config in Linux.
#
# Written for the restricted U-Boot builds found on boards: no setexpr (the countdown is a chain of
# "if" branches), no "break" in loops (a loop skips its body once a slot is chosen). For more slots,
# add a branch per slot where A and B have one, and its variables to the import and export lines.

# ---- settings: the qemu-x86 VM of tests/vm ----
# The block device holding everything, its FAT partition with uboot.env, and each slot's root
# partition (U-Boot's number and Linux's name).
setenv upkeep_if virtio
setenv upkeep_dev 0
setenv upkeep_env_part 1
setenv upkeep_env_file uboot.env
setenv upkeep_env_size 0x4000
setenv upkeep_A_part 2
setenv upkeep_A_root /dev/vda2
setenv upkeep_B_part 3
setenv upkeep_B_root /dev/vda3
# Attempts of slot A in a never-written environment ([boot] attempts in upkeep.conf).
setenv upkeep_attempts 3
# Where the environment file is read and written in RAM (out of the kernel's and the initrd's way).
setenv upkeep_env_addr 0x08000000
# The initrd above the 16 MiB + init_size the x86 kernel decompresses itself into (the default
# ramdisk_addr_r of qemu-x86, 0x4000000, is overwritten there).
setenv upkeep_initrd_addr 0x10000000
setenv upkeep_args "rw console=ttyS0,115200 panic=5"

# ---- read upkeep's variables ----
setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_A_TRY
setenv BOOT_B_LEFT
setenv BOOT_B_TRY
setenv upkeep_env_read 0
load ${upkeep_if} ${upkeep_dev}:${upkeep_env_part} ${upkeep_env_addr} ${upkeep_env_file} && env import -c ${upkeep_env_addr} ${upkeep_env_size} BOOT_ORDER BOOT_A_LEFT BOOT_A_TRY BOOT_B_LEFT BOOT_B_TRY && setenv upkeep_env_read 1
if test "${upkeep_env_read}" != 1; then
        # Missing, or a bad CRC (a power cut while fw_setenv or this script wrote the single copy):
        # nothing is known about the slots. Slot A first, but both slots get their attempts, so that a
        # slot A that does not start leads to B rather than to rule 2's endless retry of A.
        echo "upkeep: cannot read ${upkeep_env_file} (missing, or bad CRC): both slots get attempts, A first"
        setenv BOOT_ORDER "A B"
        setenv BOOT_A_LEFT ${upkeep_attempts}
        setenv BOOT_B_LEFT ${upkeep_attempts}
fi
if test -z "${BOOT_ORDER}"; then
        setenv BOOT_ORDER "A B"
        if test -z "${BOOT_A_LEFT}"; then
                setenv BOOT_A_LEFT ${upkeep_attempts}
        fi
fi

# upkeep_n minus one when it is a count of 1 to 16; empty otherwise (0, unset or not a count:
# no attempts left).
setenv upkeep_minus_one 'if test "${upkeep_n}" = 16; then setenv upkeep_n 15; elif test "${upkeep_n}" = 15; then setenv upkeep_n 14; elif test "${upkeep_n}" = 14; then setenv upkeep_n 13; elif test "${upkeep_n}" = 13; then setenv upkeep_n 12; elif test "${upkeep_n}" = 12; then setenv upkeep_n 11; elif test "${upkeep_n}" = 11; then setenv upkeep_n 10; elif test "${upkeep_n}" = 10; then setenv upkeep_n 9; elif test "${upkeep_n}" = 9; then setenv upkeep_n 8; elif test "${upkeep_n}" = 8; then setenv upkeep_n 7; elif test "${upkeep_n}" = 7; then setenv upkeep_n 6; elif test "${upkeep_n}" = 6; then setenv upkeep_n 5; elif test "${upkeep_n}" = 5; then setenv upkeep_n 4; elif test "${upkeep_n}" = 4; then setenv upkeep_n 3; elif test "${upkeep_n}" = 3; then setenv upkeep_n 2; elif test "${upkeep_n}" = 2; then setenv upkeep_n 1; elif test "${upkeep_n}" = 1; then setenv upkeep_n 0; else setenv upkeep_n; fi'

# ---- rule 1: the first slot in BOOT_ORDER with attempts left, one attempt fewer ----
setenv upkeep_slot
for upkeep_s in ${BOOT_ORDER}; do
        if test -z "${upkeep_slot}"; then
                setenv upkeep_n
                if test "${upkeep_s}" = A; then
                        setenv upkeep_n "${BOOT_A_LEFT}"
                elif test "${upkeep_s}" = B; then
                        setenv upkeep_n "${BOOT_B_LEFT}"
                fi
                run upkeep_minus_one
                if test -n "${upkeep_n}"; then
                        setenv upkeep_slot ${upkeep_s}
                        setenv BOOT_${upkeep_s}_LEFT ${upkeep_n}
                fi
        fi
done

# ---- rule 2: else the first slot in BOOT_ORDER that is not an unconfirmed try ----
if test -z "${upkeep_slot}"; then
        for upkeep_s in ${BOOT_ORDER}; do
                if test -z "${upkeep_slot}"; then
                        if test "${upkeep_s}" = A -a "${BOOT_A_TRY}" != 1; then
                                setenv upkeep_slot A
                        elif test "${upkeep_s}" = B -a "${BOOT_B_TRY}" != 1; then
                                setenv upkeep_slot B
                        fi
                fi
        done
fi

# ---- rule 3: else the first slot in BOOT_ORDER (A when BOOT_ORDER names no known slot) ----
if test -z "${upkeep_slot}"; then
        for upkeep_s in ${BOOT_ORDER}; do
                if test -z "${upkeep_slot}"; then
                        if test "${upkeep_s}" = A -o "${upkeep_s}" = B; then
                                setenv upkeep_slot ${upkeep_s}
                        fi
                fi
        done
fi
if test -z "${upkeep_slot}"; then
        setenv upkeep_slot A
fi

# ---- write back before booting: the count taken, and BOOTED ----
# Only the try markers' owner (upkeep) sets or clears BOOT_<S>_TRY; this script keeps them.
setenv BOOTED ${upkeep_slot}
echo "upkeep: booting slot ${upkeep_slot}: BOOT_ORDER=${BOOT_ORDER} A_LEFT=${BOOT_A_LEFT} A_TRY=${BOOT_A_TRY} B_LEFT=${BOOT_B_LEFT} B_TRY=${BOOT_B_TRY}"
setenv upkeep_env_written 0
env export -c -s ${upkeep_env_size} ${upkeep_env_addr} BOOT_ORDER BOOT_A_LEFT BOOT_A_TRY BOOT_B_LEFT BOOT_B_TRY BOOTED && fatwrite ${upkeep_if} ${upkeep_dev}:${upkeep_env_part} ${upkeep_env_addr} ${upkeep_env_file} ${upkeep_env_size} && setenv upkeep_env_written 1
if test "${upkeep_env_written}" != 1; then
        # Booting anyway: a device always boots something; the attempt is not counted.
        echo "upkeep: cannot write ${upkeep_env_file}: the attempt on slot ${upkeep_slot} is not counted"
fi

# ---- boot the chosen slot (x86: a bzImage and an initrd with zboot) ----
if test "${upkeep_slot}" = B; then
        setenv upkeep_part ${upkeep_B_part}
        setenv upkeep_root ${upkeep_B_root}
else
        setenv upkeep_part ${upkeep_A_part}
        setenv upkeep_root ${upkeep_A_root}
fi
setenv bootargs "root=${upkeep_root} ${upkeep_args} upkeep.slot=${upkeep_slot}"
load ${upkeep_if} ${upkeep_dev}:${upkeep_part} ${kernel_addr_r} /vmlinuz
setenv upkeep_kernel_size ${filesize}
load ${upkeep_if} ${upkeep_dev}:${upkeep_part} ${upkeep_initrd_addr} /initrd.img
zboot ${kernel_addr_r} ${upkeep_kernel_size} ${upkeep_initrd_addr} ${filesize}
# Only reached when the slot could not be started: a kernel that does not come up counts as a boot
# attempt (already written above), so a reset tries again and falls back once the attempts are spent.
echo "upkeep: slot ${upkeep_slot} did not start; resetting"
reset
