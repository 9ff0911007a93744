/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-api.h"

/* One row per kind: the bus error the daemon answers with and the exit status the tools end with. */
static const struct {
        const char *bus_error; /* NULL: BUS_ERROR_FAILED */
        int exit_status;
        bool rejected;
} kind_map[_UPK_ERR_KIND_MAX] = {
        [UPK_ERR_NONE] = { NULL, UPK_EXIT_FAIL, false },
        [UPK_ERR_IO] = { NULL, UPK_EXIT_FAIL, false },
        [UPK_ERR_FORMAT] = { BUS_ERROR_FORMAT, UPK_EXIT_REJECT_FORMAT, true },
        [UPK_ERR_MANIFEST] = { BUS_ERROR_MANIFEST, UPK_EXIT_REJECT_MANIFEST, true },
        [UPK_ERR_SIGNATURE] = { BUS_ERROR_SIGNATURE, UPK_EXIT_REJECT_SIGNATURE, true },
        [UPK_ERR_PAYLOAD] = { BUS_ERROR_PAYLOAD, UPK_EXIT_REJECT_PAYLOAD, true },
        [UPK_ERR_COMPATIBLE] = { BUS_ERROR_NOT_COMPATIBLE, UPK_EXIT_REJECT_COMPATIBLE, true },
        [UPK_ERR_DOWNGRADE] = { BUS_ERROR_DOWNGRADE, UPK_EXIT_REJECT_DOWNGRADE, true },
        [UPK_ERR_CONFIG] = { BUS_ERROR_CONFIG, UPK_EXIT_CONFIG, false },
        [UPK_ERR_NETWORK] = { NULL, UPK_EXIT_FAIL, false },
};

/* Refusals of the caller: the daemon's polkit check (daemon/polkit.c) and the bus's own. */
static const char *const access_denied_errors[] = {
        "org.freedesktop.DBus.Error.AccessDenied",
        "org.freedesktop.DBus.Error.AuthFailed",
        "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
};

static bool kind_valid(UpkErrKind kind)
{
        return kind >= 0 && kind < _UPK_ERR_KIND_MAX;
}

int upk_err_kind_exit_status(UpkErrKind kind, bool *ret_rejected)
{
        bool valid = kind_valid(kind);

        if (ret_rejected)
                *ret_rejected = valid && kind_map[kind].rejected;
        return valid ? kind_map[kind].exit_status : UPK_EXIT_FAIL;
}

int upk_err_exit_status(const UpkErr *e, bool *ret_rejected)
{
        return upk_err_kind_exit_status(e->kind, ret_rejected);
}

const char *upk_bus_error_name(const UpkErr *e)
{
        if (e->code == -ECANCELED)
                return BUS_ERROR_CANCELLED;
        if (kind_valid(e->kind) && kind_map[e->kind].bus_error)
                return kind_map[e->kind].bus_error;
        return BUS_ERROR_FAILED;
}

UpkErrKind upk_bus_error_to_kind(const char *name)
{
        if (isempty(name))
                return UPK_ERR_NONE;
        for (UpkErrKind k = 0; k < _UPK_ERR_KIND_MAX; k++)
                if (kind_map[k].bus_error && streq(name, kind_map[k].bus_error))
                        return k;
        return UPK_ERR_IO;
}

int upk_bus_error_exit_status(const char *name)
{
        if (isempty(name))
                return UPK_EXIT_OK;
        for (size_t i = 0; i < ELEMENTSOF(access_denied_errors); i++)
                if (streq(name, access_denied_errors[i]))
                        return UPK_EXIT_ACCESS_DENIED;
        return upk_err_kind_exit_status(upk_bus_error_to_kind(name), NULL);
}
