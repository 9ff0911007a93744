/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The io.upkeep.Update1 object: one vtable (bus.c), the error mapping, and the signals. */

#include "manager.h"

#define BUS_ERROR_SIGNATURE      "io.upkeep.Update1.Error.Signature"
#define BUS_ERROR_NOT_COMPATIBLE "io.upkeep.Update1.Error.NotCompatible"
#define BUS_ERROR_DOWNGRADE      "io.upkeep.Update1.Error.Downgrade"
#define BUS_ERROR_MANIFEST       "io.upkeep.Update1.Error.Manifest"
#define BUS_ERROR_FORMAT         "io.upkeep.Update1.Error.Format"
#define BUS_ERROR_PAYLOAD        "io.upkeep.Update1.Error.Payload"
#define BUS_ERROR_CONFIG         "io.upkeep.Update1.Error.Config"
#define BUS_ERROR_BUSY           "io.upkeep.Update1.Error.Busy"
#define BUS_ERROR_NOT_RUNNING    "io.upkeep.Update1.Error.NotRunning"
#define BUS_ERROR_NO_SOURCE      "io.upkeep.Update1.Error.NoSource"
#define BUS_ERROR_CANCELLED      "io.upkeep.Update1.Error.Cancelled"
#define BUS_ERROR_NO_UPDATE      "io.upkeep.Update1.Error.NoUpdate"

#define BUS_ACCESS_DENIED_MESSAGE \
        "updates can only be managed by root or with the polkit action io.upkeep.manage"

int bus_add_object(Manager *m);
/* The bus error name for a library failure (the one mapping, upkeep-dbus(7)). */
const char *bus_error_name(const UpkErr *e);
/* Fill `error` from a library failure and return e->code (or -EIO). */
int bus_error_set_upk(sd_bus_error *error, const UpkErr *e);
/* PropertiesChanged for the NULL-terminated list of property names. */
void bus_emit_changed(Manager *m, const char *property, ...) __attribute__((sentinel));
void bus_emit_finished(Manager *m, bool ok, const char *message, const char *error_name);
/* Answer a GetSlots call: the configured slots with `states` (by slot index; read by the worker) and the
 * versions the state records. */
int bus_reply_slots(Manager *m, sd_bus_message *call, const SlotState *states, size_t n_states);
