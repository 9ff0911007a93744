/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-api.h"
#include "tests.h"

/* The contract of upkeep-dbus(7) and updatectl(1), spelled out once more on purpose: a change to
 * bus-api.h that renames an error or moves an exit status must change this table too. */
static const struct {
        UpkErrKind kind;
        const char *bus_error;
        int status;
        bool rejected;
} contract[] = {
        { UPK_ERR_NONE, "org.freedesktop.DBus.Error.Failed", UPK_EXIT_FAIL, false },
        { UPK_ERR_IO, "org.freedesktop.DBus.Error.Failed", UPK_EXIT_FAIL, false },
        { UPK_ERR_FORMAT, "io.upkeep.Update1.Error.Format", 14, true },
        { UPK_ERR_MANIFEST, "io.upkeep.Update1.Error.Manifest", 13, true },
        { UPK_ERR_SIGNATURE, "io.upkeep.Update1.Error.Signature", 10, true },
        { UPK_ERR_PAYLOAD, "io.upkeep.Update1.Error.Payload", 15, true },
        { UPK_ERR_COMPATIBLE, "io.upkeep.Update1.Error.NotCompatible", 11, true },
        { UPK_ERR_DOWNGRADE, "io.upkeep.Update1.Error.Downgrade", 12, true },
        { UPK_ERR_CONFIG, "io.upkeep.Update1.Error.Config", 16, false },
        { UPK_ERR_NETWORK, "org.freedesktop.DBus.Error.Failed", UPK_EXIT_FAIL, false },
};

TEST(names)
{
        ASSERT_STREQ(UPKEEP_BUS_NAME, "io.upkeep.Update1");
        ASSERT_STREQ(UPKEEP_BUS_PATH, "/io/upkeep/Update1");
        ASSERT_STREQ(UPKEEP_BUS_INTERFACE, "io.upkeep.Update1");
        ASSERT_STREQ(BUS_ERROR_BUSY, "io.upkeep.Update1.Error.Busy");
        ASSERT_STREQ(BUS_ERROR_NOT_RUNNING, "io.upkeep.Update1.Error.NotRunning");
        ASSERT_STREQ(BUS_ERROR_NO_SOURCE, "io.upkeep.Update1.Error.NoSource");
        ASSERT_STREQ(BUS_ERROR_CANCELLED, "io.upkeep.Update1.Error.Cancelled");
        ASSERT_STREQ(BUS_ERROR_NO_UPDATE, "io.upkeep.Update1.Error.NoUpdate");
}

TEST(every_kind_has_a_bus_error_and_an_exit_status)
{
        ASSERT_EQ(ELEMENTSOF(contract), _UPK_ERR_KIND_MAX);
        for (size_t i = 0; i < ELEMENTSOF(contract); i++) {
                UpkErr e = { .kind = contract[i].kind, .code = -EIO };
                bool rejected = !contract[i].rejected;

                ASSERT_EQ(contract[i].kind, (UpkErrKind)i);
                ASSERT_STREQ(upk_bus_error_name(&e), contract[i].bus_error);
                ASSERT_EQ(upk_err_exit_status(&e, &rejected), contract[i].status);
                ASSERT_EQ(rejected, contract[i].rejected);
                ASSERT_EQ(upk_err_kind_exit_status(e.kind, NULL), contract[i].status);
        }
}

TEST(round_trips)
{
        for (UpkErrKind k = 0; k < _UPK_ERR_KIND_MAX; k++) {
                UpkErr e = { .kind = k, .code = -EINVAL };
                const char *name = upk_bus_error_name(&e);

                /* The CLI ends with the status the daemon's error would have given it locally. */
                ASSERT_EQ(upk_bus_error_exit_status(name), upk_err_exit_status(&e, NULL));
                /* A kind of its own comes back from its name; the others read as a plain failure. */
                if (strncmp(name, BUS_ERROR_PREFIX, strlen(BUS_ERROR_PREFIX)) == 0)
                        ASSERT_EQ(upk_bus_error_to_kind(name), k);
                else
                        ASSERT_EQ(upk_bus_error_to_kind(name), UPK_ERR_IO);
        }
}

TEST(cancelled_whatever_the_kind)
{
        UpkErr e = { .kind = UPK_ERR_PAYLOAD, .code = -ECANCELED };

        ASSERT_STREQ(upk_bus_error_name(&e), BUS_ERROR_CANCELLED);
        ASSERT_EQ(upk_bus_error_exit_status(BUS_ERROR_CANCELLED), UPK_EXIT_FAIL);
}

TEST(bus_errors_of_no_kind)
{
        static const struct {
                const char *name;
                int status;
        } table[] = {
                { "", UPK_EXIT_OK },
                { BUS_ERROR_BUSY, UPK_EXIT_FAIL },
                { BUS_ERROR_NOT_RUNNING, UPK_EXIT_FAIL },
                { BUS_ERROR_NO_SOURCE, UPK_EXIT_FAIL },
                { BUS_ERROR_NO_UPDATE, UPK_EXIT_FAIL },
                { BUS_ERROR_FAILED, UPK_EXIT_FAIL },
                { "org.freedesktop.DBus.Error.NoReply", UPK_EXIT_FAIL },
                { "org.freedesktop.DBus.Error.AccessDenied", UPK_EXIT_ACCESS_DENIED },
                { "org.freedesktop.DBus.Error.AuthFailed", UPK_EXIT_ACCESS_DENIED },
                { "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", UPK_EXIT_ACCESS_DENIED },
                { "io.upkeep.Update1.Error.Signaturex", UPK_EXIT_FAIL },
        };

        ASSERT_EQ(upk_bus_error_exit_status(NULL), UPK_EXIT_OK);
        ASSERT_EQ(upk_bus_error_to_kind(NULL), UPK_ERR_NONE);
        ASSERT_EQ(upk_bus_error_to_kind(""), UPK_ERR_NONE);
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                ASSERT_EQ(upk_bus_error_exit_status(table[i].name), table[i].status);
}

TEST(invalid_kinds_are_plain_failures)
{
        UpkErr e = { .kind = _UPK_ERR_KIND_INVALID, .code = -EIO };
        bool rejected = true;

        ASSERT_EQ(upk_err_exit_status(&e, &rejected), UPK_EXIT_FAIL);
        ASSERT_FALSE(rejected);
        ASSERT_STREQ(upk_bus_error_name(&e), BUS_ERROR_FAILED);
        e.kind = _UPK_ERR_KIND_MAX;
        ASSERT_EQ(upk_err_kind_exit_status(e.kind, &rejected), UPK_EXIT_FAIL);
        ASSERT_FALSE(rejected);
}
