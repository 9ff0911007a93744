/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The simulated bootloaders of the unit tests, one rig per boot backend: file (upkeep-bootsim's
 * boot_file_simulate_boot()), uboot (a file-backed redundant environment through fw_setenv and
 * fw_printenv, with a boot-count script in C), grub (a grubenv through grub-editenv, with
 * contrib/grub/upkeep.cfg in C) and script (contrib/boot-script-example.sh, whose state file reboots like
 * the file backend's). Shared by test-boot (the backends) and test-install (the confirmation on each). */

#include "conf.h"
#include "tests.h"

typedef struct Map Map;

typedef struct Rig {
        const char *name;
        void (*setup)(Config *c);         /* the backend's [boot] fields and files, in the current folder */
        char *(*reboot)(const Config *c); /* the slot the simulated bootloader booted */
        void (*read_env)(const Config *c, struct Map *m); /* the backend's raw variables */
        bool knows_current; /* the backend can tell the booted slot (grub cannot) */
} Rig;

extern const Rig rig_file, rig_uboot, rig_grub, rig_script;

void file_setup(Config *c);
void uboot_setup(Config *c);
void grub_setup(Config *c);
void script_setup(Config *c);
char *file_reboot(const Config *c);
/* The [boot] lines of an upkeep.conf for the rig's backend, its files set up in the current folder. */
char *rig_boot_lines(const Rig *rig);

/* contrib/boot-script-example.sh in the source tree. */
char *example_script(void);
/* Run a shell command; fail the case when it fails. */
void run_sh(const char *cmd);
/* Fail the case when `tool` is not in PATH, naming its package. */
void require_tool(const char *tool, const char *package);

/* A tiny variable map for the uboot and grub simulators. */
struct Map {
        char key[32][64];
        char val[32][256];
        size_t n;
};

/* The KEY=VALUE lines a command prints. */
void map_read(Map *m, const char *cmd);
/* A key's value; "" when unset. */
const char *map_get(const Map *m, const char *k);
