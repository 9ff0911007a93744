/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "log.h"

#define REBOOT_TIMEOUT_USEC (60 * 1000000ULL)

/* [policy] reboot = auto: ask systemd to reboot, with the first `systemctl` in PATH (`systemctl reboot`).
 * `why` completes "rebooting to ...". With `dry_run` (--no-reboot) it only says it would. What it has to
 * say goes to `log` (NOTICE: what it does; ERROR: why it could not). The verbs and the service share it. */
int reboot_system(const char *why, bool dry_run, LogFunc log, void *userdata);
