/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The io.upkeep.Update1 object: one vtable (bus.c), errors as bus replies, and the signals. The names and
 * the error mapping are lib/bus's (bus-api.h). */

#include "manager.h"

#define BUS_ACCESS_DENIED_MESSAGE \
        "updates can only be managed by root or with the polkit action io.upkeep.manage"

int bus_add_object(Manager *m);
/* Fill `error` from a library failure and return e->code (or -EIO). */
int bus_error_set_upk(sd_bus_error *error, const UpkErr *e);
/* PropertiesChanged for the NULL-terminated list of property names. */
void bus_emit_changed(Manager *m, const char *property, ...) __attribute__((sentinel));
void bus_emit_finished(Manager *m, bool ok, const char *message, const char *error_name);
/* Answer a GetSlots call: the configured slots with `states` (by slot index; read by the worker) and the
 * versions the state records. */
int bus_reply_slots(Manager *m, sd_bus_message *call, const SlotState *states, size_t n_states);
