/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "bundle-test-util.h"
#include "install-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

/* A device in the current folder with two A/B slot classes, rootfs and appfs, whose A slots hold
 * `a_size` and 1 MiB of content and whose B slots 2 MiB and 1 MiB; `extra` goes at the end. */
static Config *device(size_t a_size, const char *extra)
{
        _cleanup_free_ uint8_t *a = random_bytes(a_size, 1), *b = random_bytes(2 * MIB, 2),
                               *app = random_bytes(MIB, 3);
        _cleanup_free_ char *root = test_cwd_path(""), *text = NULL;
        Config *c = NULL;
        UpkErr e = {};

        test_write_file("slotA.img", a, a_size);
        test_write_file("slotB.img", b, 2 * MIB);
        test_write_file("appA.img", app, MIB);
        test_write_file("appB.img", app, MIB);
        text = strdup_printf("[device]\ncompatible = acme-gw\ndata-dir = %sdata\n"
                             "[keyring]\npath = %s\n"
                             "[boot]\nbackend = file\nstate-file = %sbootenv\n"
                             "[slot.rootfs.A]\ndevice = %sslotA.img\n"
                             "[slot.rootfs.B]\ndevice = %sslotB.img\n"
                             "[slot.appfs.A]\ndevice = %sappA.img\n"
                             "[slot.appfs.B]\ndevice = %sappB.img\n"
                             "%s",
                             root, test_pki("keyring.pem"), root, root, root, root, root, extra ?: "");
        ASSERT_TRUE(text);
        test_write_str("upkeep.conf", text);
        ASSERT_OK_E(config_load("upkeep.conf", &c, &e), &e);
        return c;
}

static bool exists(const char *path)
{
        return access(path, F_OK) >= 0;
}

/* The names in the data folder other than "." and "..", sorted by the caller's check: their count. */
static size_t data_entries(void)
{
        DIR *d = opendir("data");
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

/* The table the install would use for slot `s`: found in the data folder, not computed again. */
static void assert_saved(const Config *c, const SlotConfig *s, uint64_t size)
{
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        bool computed = true;
        UpkErr e = {};
        int fd = open(s->device, O_RDONLY | O_CLOEXEC);

        ASSERT_TRUE(fd >= 0);
        ASSERT_OK_E(install_delta_slot_table(c, s, fd, size, BLOCK_SIZE_DEFAULT, NULL, NULL, &t, &computed,
                                             NULL, &e),
                    &e);
        close(fd);
        ASSERT_FALSE(computed);
        ASSERT_EQ(block_table_size(t), (size_t)(size / BLOCK_SIZE_DEFAULT));
}

/* The booted slot of each class gets its table, the other slots none; a second call finds them; a slot
 * changed since (a new file: another inode and time) is hashed again, alone. */
TEST(tables_of_the_booted_slots_only)
{
        _cleanup_(config_freep) Config *c = device(3 * MIB, NULL);
        InstallPrepareStats st;
        UpkErr e = {};

        ASSERT_OK_E(install_delta_prepare_tables(c, "A", NULL, NULL, &st, &e), &e);
        ASSERT_EQ(st.computed, 2u);
        ASSERT_EQ(st.cached, 0u);
        ASSERT_EQ(st.blocks, (uint64_t)(4 * MIB / BLOCK_SIZE_DEFAULT));
        ASSERT_STREQ(st.slots, "rootfs.A, appfs.A");
        ASSERT_TRUE(st.seconds >= 0);
        ASSERT_TRUE(exists("data/blocks-rootfs-A.table"));
        ASSERT_TRUE(exists("data/blocks-appfs-A.table"));
        ASSERT_FALSE(exists("data/blocks-rootfs-B.table"));
        ASSERT_FALSE(exists("data/blocks-appfs-B.table"));
        ASSERT_EQ(data_entries(), 2u);
        assert_saved(c, &c->slots[0], 3 * MIB);
        assert_saved(c, &c->slots[2], MIB);

        ASSERT_OK_E(install_delta_prepare_tables(c, "A", NULL, NULL, &st, &e), &e);
        ASSERT_EQ(st.computed, 0u);
        ASSERT_EQ(st.cached, 2u);
        ASSERT_EQ(st.blocks, 0u);
        ASSERT_STREQ(st.slots, "");

        _cleanup_free_ uint8_t *other = random_bytes(3 * MIB, 9);
        ASSERT_OK(unlink("slotA.img"));
        test_write_file("slotA.img", other, 3 * MIB);
        ASSERT_OK_E(install_delta_prepare_tables(c, "A", NULL, NULL, &st, &e), &e);
        ASSERT_EQ(st.computed, 1u);
        ASSERT_EQ(st.cached, 1u);
        ASSERT_STREQ(st.slots, "rootfs.A");
}

/* Booted B: B's tables; an empty booted slot (nothing a payload could reuse) is left out, not an error. */
TEST(the_booted_slot_is_the_one_named)
{
        _cleanup_(config_freep) Config *c = device(MIB, NULL);
        InstallPrepareStats st;
        UpkErr e = {};

        test_write_str("appB.img", "");
        ASSERT_OK_E(install_delta_prepare_tables(c, "B", NULL, NULL, &st, &e), &e);
        ASSERT_EQ(st.computed, 1u);
        ASSERT_STREQ(st.slots, "rootfs.B");
        ASSERT_TRUE(exists("data/blocks-rootfs-B.table"));
        ASSERT_FALSE(exists("data/blocks-appfs-B.table"));
        ASSERT_FALSE(exists("data/blocks-rootfs-A.table"));
        ASSERT_OK_E(install_delta_prepare_tables(c, NULL, NULL, NULL, &st, &e), &e);
        ASSERT_EQ(st.computed + st.cached, 0u);
}

TEST(delta_off_does_nothing)
{
        _cleanup_(config_freep) Config *c = device(MIB, "[install]\ndelta = no\n");
        InstallPrepareStats st = { .computed = 7 };
        UpkErr e = {};

        ASSERT_FALSE(c->delta);
        ASSERT_OK_E(install_delta_prepare_tables(c, "A", NULL, NULL, &st, &e), &e);
        ASSERT_EQ(st.computed, 0u);
        ASSERT_EQ(st.cached, 0u);
        ASSERT_FALSE(exists("data"));
}

static bool cancel_after(void *userdata)
{
        unsigned *calls = userdata;
        return ++*calls > 2;
}

/* Cancelled while hashing: -ECANCELED, and nothing in the data folder (no table, no temporary file); a
 * temporary file an earlier save left (the daemon killed while it wrote) goes too. */
TEST(cancelled_leaves_no_table)
{
        _cleanup_(config_freep) Config *c = device(32 * MIB, NULL);
        InstallPrepareStats st = {};
        unsigned calls = 0;
        UpkErr e = {};

        ASSERT_OK(mkdir("data", 0755));
        test_write_str("data/.#blocks-rootfs-A.table.Ab12Cd", "half a table");
        test_write_str("data/.#blocks-rootfs-B.table.Ab12Cd", "not ours to remove");
        ASSERT_UPK_ERR(install_delta_prepare_tables(c, "A", cancel_after, &calls, &st, &e), &e, -ECANCELED,
                       UPK_ERR_IO, "");
        ASSERT_TRUE(calls > 2);
        ASSERT_FALSE(exists("data/blocks-rootfs-A.table"));
        ASSERT_FALSE(exists("data/blocks-appfs-A.table"));
        ASSERT_FALSE(exists("data/.#blocks-rootfs-A.table.Ab12Cd"));
        ASSERT_EQ(data_entries(), 1u); /* B's */
        /* Not cancelled, the same call makes both. */
        ASSERT_OK_E(install_delta_prepare_tables(c, "A", NULL, NULL, &st, &e), &e);
        ASSERT_EQ(st.computed, 2u);
}

/* A booted slot that cannot be read whole: the error names the slot and the file; the other class's
 * table is made all the same. */
TEST(a_slot_that_cannot_be_read)
{
        static const char short_file[] = "/sys/devices/system/cpu/online"; /* 4096 bytes by stat, fewer */
        _cleanup_(config_freep) Config *c = NULL;
        InstallPrepareStats st = {};
        struct stat s;
        UpkErr e = {};

        if (stat(short_file, &s) < 0 || s.st_size == 0) {
                printf("skipped: %s is not there\n", short_file);
                return;
        }
        c = device(MIB, NULL);
        free(c->slots[0].device);
        c->slots[0].device = strdup(short_file);
        ASSERT_TRUE(c->slots[0].device);
        ASSERT_UPK_ERR(install_delta_prepare_tables(c, "A", NULL, NULL, &st, &e), &e, -EIO, UPK_ERR_IO,
                       "slot rootfs.A: /sys/devices/system/cpu/online");
        ASSERT_FALSE(exists("data/blocks-rootfs-A.table"));
        ASSERT_TRUE(exists("data/blocks-appfs-A.table"));
}

/* A table that cannot be kept (the data folder is a file here) would be made again at every start: the
 * call fails, naming the slot and the file. */
TEST(a_table_that_cannot_be_kept)
{
        _cleanup_(config_freep) Config *c = device(MIB, NULL);
        InstallPrepareStats st = {};
        UpkErr e = {};

        test_write_str("data", "not a folder\n");
        ASSERT_UPK_ERR(install_delta_prepare_tables(c, "A", NULL, NULL, &st, &e), &e, -ENOTDIR, UPK_ERR_IO,
                       "slot rootfs.A: its block table cannot be kept: ");
        ASSERT_TRUE(strstr(e.msg, "data/blocks-rootfs-A.table: cannot write: "));
}
