/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who may act (Install, Cancel, Rollback, MarkGood, Postpone, SetAutoUpdate, Check): a caller with
 * effective uid 0; else, when polkit is on the bus, whoever polkit authorizes for io.upkeep.manage
 * (asked asynchronously: the call's reply waits, the loop does not); else nobody:
 * org.freedesktop.DBus.Error.AccessDenied. */

#include "manager.h"

#define POLKIT_ACTION "io.upkeep.manage"

/* The method body, run once the caller is authorized. Returns like an sd-bus method handler. */
typedef int (*AuthorizedFunc)(sd_bus_message *m, Manager *mgr, sd_bus_error *error);

/* Run `func` now (root), later (polkit said yes), or reply AccessDenied. Returns like a method
 * handler: the caller returns this value. */
int polkit_authorize(sd_bus_message *m, Manager *mgr, AuthorizedFunc func, sd_bus_error *error);
/* Whether the caller of `m` has effective uid 0 (no polkit involved). */
bool polkit_caller_is_root(sd_bus_message *m);
/* Drop the checks still in flight (their callers get no reply: we are going away). */
void polkit_cancel_all(Manager *mgr);
