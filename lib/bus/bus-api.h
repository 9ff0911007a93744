/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The names of upkeepd's D-Bus API (upkeep-dbus(7)) and the one mapping between an error's kind, its bus
 * error name and the exit status of updatectl and upkeepd. Shared by daemon/ and cli/; plain strings and
 * ints, no sd-bus, so the host tool (-Ddaemon=false) uses the exit statuses without libsystemd. */

#include "error.h"

#define UPKEEP_BUS_NAME      "io.upkeep.Update1"
#define UPKEEP_BUS_PATH      "/io/upkeep/Update1"
#define UPKEEP_BUS_INTERFACE "io.upkeep.Update1"

/* The API's own errors. Each one but the last five stands for an UpkErrKind (upk_bus_error_name()). */
#define BUS_ERROR_PREFIX         UPKEEP_BUS_INTERFACE ".Error."
#define BUS_ERROR_SIGNATURE      BUS_ERROR_PREFIX "Signature"
#define BUS_ERROR_NOT_COMPATIBLE BUS_ERROR_PREFIX "NotCompatible"
#define BUS_ERROR_DOWNGRADE      BUS_ERROR_PREFIX "Downgrade"
#define BUS_ERROR_MANIFEST       BUS_ERROR_PREFIX "Manifest"
#define BUS_ERROR_FORMAT         BUS_ERROR_PREFIX "Format"
#define BUS_ERROR_PAYLOAD        BUS_ERROR_PREFIX "Payload"
#define BUS_ERROR_CONFIG         BUS_ERROR_PREFIX "Config"
#define BUS_ERROR_BUSY           BUS_ERROR_PREFIX "Busy"
#define BUS_ERROR_NOT_RUNNING    BUS_ERROR_PREFIX "NotRunning"
#define BUS_ERROR_NO_SOURCE      BUS_ERROR_PREFIX "NoSource"
#define BUS_ERROR_CANCELLED      BUS_ERROR_PREFIX "Cancelled"
#define BUS_ERROR_NO_UPDATE      BUS_ERROR_PREFIX "NoUpdate"

/* The generic error for a failure of no other kind (sd-bus's SD_BUS_ERROR_FAILED). */
#define BUS_ERROR_FAILED "org.freedesktop.DBus.Error.Failed"

/* Exit status of the command-line tools, documented in updatectl(1) and upkeepd(8). */
enum {
        UPK_EXIT_OK = 0,
        UPK_EXIT_FAIL = 1,
        UPK_EXIT_USAGE = 2,
        UPK_EXIT_ACCESS_DENIED = 4, /* the daemon refused the caller: not root, no polkit grant */
        UPK_EXIT_REJECT_SIGNATURE = 10,
        UPK_EXIT_REJECT_COMPATIBLE = 11,
        UPK_EXIT_REJECT_DOWNGRADE = 12,
        UPK_EXIT_REJECT_MANIFEST = 13,
        UPK_EXIT_REJECT_FORMAT = 14,
        UPK_EXIT_REJECT_PAYLOAD = 15,
        UPK_EXIT_CONFIG = 16,
};

/* The exit status for an error's kind; *ret_rejected tells whether it is a rejection of the input. */
int upk_err_kind_exit_status(UpkErrKind kind, bool *ret_rejected);
int upk_err_exit_status(const UpkErr *e, bool *ret_rejected);

/* The bus error name for a failure: BUS_ERROR_CANCELLED for -ECANCELED, the kind's own name, else
 * BUS_ERROR_FAILED. Never NULL. */
const char *upk_bus_error_name(const UpkErr *e);
/* The kind a bus error name stands for: UPK_ERR_NONE for NULL or "", UPK_ERR_IO for a name of no kind
 * (Failed, Busy, an error of another interface). */
UpkErrKind upk_bus_error_to_kind(const char *name);
/* The exit status for a bus error name: UPK_EXIT_OK for NULL or "", the kind's status for the API's errors,
 * UPK_EXIT_ACCESS_DENIED for D-Bus's and polkit's refusals, else UPK_EXIT_FAIL. The same status as
 * upk_err_exit_status() gives for the error the daemon mapped to this name. */
int upk_bus_error_exit_status(const char *name);
