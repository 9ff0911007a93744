/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"

#include <sys/stat.h>

#include "conf.h"

#define MIN_USEC  (60ull * 1000000ull)
#define HOUR_USEC (60ull * MIN_USEC)
#define DAY_USEC  (24ull * HOUR_USEC)

static void write_str(const char *path, const char *s)
{
        test_write_file(path, s, strlen(s));
}

static const char minimal[] = "[device]\n"
                              "compatible = acme-gw\n";

static Config *load_ok(const char *path)
{
        UpkErr e = { 0 };
        Config *c = NULL;

        ASSERT_OK_E(config_load(path, &c, &e), &e);
        ASSERT_TRUE(c);
        return c;
}

/* config_load fails with -EINVAL / UPK_ERR_CONFIG and exactly `msg`. */
static void load_fails(const char *path, const char *msg)
{
        UpkErr e = { 0 };
        Config *c = NULL;

        ASSERT_UPK_ERR(config_load(path, &c, &e), &e, -EINVAL, UPK_ERR_CONFIG, msg);
        ASSERT_STREQ(e.msg, msg);
        ASSERT_TRUE(c == NULL);
}

TEST(full_config_every_key)
{
        _cleanup_(config_freep) Config *c = NULL;
        const SlotConfig *s;

        write_str("upkeep.conf", "# a full configuration\n"
                                 "[device]\n"
                                 "compatible = acme-gw_2.0+x\n"
                                 "version-file = /etc/acme-version\n"
                                 "data-dir = /data/upkeep\n"
                                 "[keyring]\n"
                                 "path = /etc/acme/ca.pem\n"
                                 "crl = /etc/acme/ca.crl\n"
                                 "[boot]\n"
                                 "backend = script\n"
                                 "state-file = /run/bootenv\n"
                                 "booted = B\n"
                                 "script = /usr/libexec/acme-boot\n"
                                 "grubenv = /boot/efi/grubenv\n"
                                 "uboot-config = /etc/fw_env.config\n"
                                 "attempts = 16\n"
                                 "[slot.rootfs.A]\n"
                                 "device = /dev/mmcblk0p2\n"
                                 "bootname = system0\n"
                                 "size = 64M\n"
                                 "fstype = ext4\n"
                                 "[slot.rootfs.B]\n"
                                 "device = /dev/mmcblk0p3\n"
                                 "bootname = system1\n"
                                 "size = 1G\n"
                                 "fstype = btrfs\n"
                                 "[slot.app_data-1.A]\n"
                                 "device = /srv/app-a\n"
                                 "[slot.app_data-1.B]\n"
                                 "device = /srv/app-b\n"
                                 "[source]\n"
                                 "type = tuf\n"
                                 "url = https://updates.example.com/acme-gw/\n"
                                 "metadata-url = https://meta.example.com/m/\n"
                                 "targets-url = http://cdn.example.com/t/\n"
                                 "root = /etc/upkeep/root.json\n"
                                 "ca = /etc/ssl/acme-ca.pem\n"
                                 "client-cert = /etc/upkeep/client.pem\n"
                                 "client-key = /etc/upkeep/client.key\n"
                                 "proxy = proxy.lan:3128\n"
                                 "dir = /media/usb\n"
                                 "poll-interval = 1h30m\n"
                                 "jitter = 10m\n"
                                 "[policy]\n"
                                 "auto-install = security\n"
                                 "reboot = manual\n"
                                 "maintenance-window = 23:30-01:15\n"
                                 "allow-downgrade = yes\n"
                                 "support-end = 2028-02-29\n"
                                 "[health]\n"
                                 "dir = /etc/acme/health\n"
                                 "timeout = 2m\n"
                                 "[install]\n"
                                 "handlers-dir = /opt/handlers\n");
        c = load_ok("upkeep.conf");

        ASSERT_STREQ(c->compatible, "acme-gw_2.0+x");
        ASSERT_STREQ(c->version_file, "/etc/acme-version");
        ASSERT_STREQ(c->data_dir, "/data/upkeep");
        ASSERT_STREQ(c->keyring, "/etc/acme/ca.pem");
        ASSERT_STREQ(c->crl, "/etc/acme/ca.crl");
        ASSERT_EQ(c->boot_backend, BOOT_BACKEND_SCRIPT);
        ASSERT_STREQ(c->boot_state_file, "/run/bootenv");
        ASSERT_STREQ(c->boot_booted, "B");
        ASSERT_STREQ(c->boot_script, "/usr/libexec/acme-boot");
        ASSERT_STREQ(c->boot_grubenv, "/boot/efi/grubenv");
        ASSERT_STREQ(c->boot_uboot_config, "/etc/fw_env.config");
        ASSERT_EQ(c->boot_attempts, 16);

        ASSERT_EQ(c->n_slots, 4);
        s = config_find_slot(c, "rootfs", "A");
        ASSERT_TRUE(s);
        ASSERT_STREQ(s->device, "/dev/mmcblk0p2");
        ASSERT_STREQ(s->bootname, "system0");
        ASSERT_EQ(s->size, 64ull << 20);
        ASSERT_STREQ(s->fstype, "ext4");
        s = config_find_slot(c, "rootfs", "B");
        ASSERT_TRUE(s);
        ASSERT_STREQ(s->device, "/dev/mmcblk0p3");
        ASSERT_STREQ(s->bootname, "system1");
        ASSERT_EQ(s->size, 1ull << 30);
        ASSERT_STREQ(s->fstype, "btrfs");
        s = config_find_slot(c, "app_data-1", "B");
        ASSERT_TRUE(s);
        ASSERT_STREQ(s->device, "/srv/app-b");
        ASSERT_STREQ(s->bootname, "B");
        ASSERT_TRUE(config_find_slot(c, "rootfs", "C") == NULL);
        ASSERT_TRUE(config_find_slot(c, "boot", "A") == NULL);

        ASSERT_EQ(c->source_type, SOURCE_TUF);
        ASSERT_STREQ(c->source_url, "https://updates.example.com/acme-gw/");
        ASSERT_STREQ(c->source_metadata_url, "https://meta.example.com/m/");
        ASSERT_STREQ(c->source_targets_url, "http://cdn.example.com/t/");
        ASSERT_STREQ(c->source_root, "/etc/upkeep/root.json");
        ASSERT_STREQ(c->source_ca, "/etc/ssl/acme-ca.pem");
        ASSERT_STREQ(c->source_client_cert, "/etc/upkeep/client.pem");
        ASSERT_STREQ(c->source_client_key, "/etc/upkeep/client.key");
        ASSERT_STREQ(c->source_proxy, "proxy.lan:3128");
        ASSERT_STREQ(c->source_dir, "/media/usb");
        ASSERT_EQ(c->poll_interval_usec, 90 * MIN_USEC);
        ASSERT_EQ(c->jitter_usec, 10 * MIN_USEC);

        ASSERT_EQ(c->auto_install, AUTO_INSTALL_SECURITY);
        ASSERT_EQ(c->reboot, REBOOT_MANUAL);
        ASSERT_TRUE(c->has_maintenance_window);
        ASSERT_EQ(c->window_start_min, 23 * 60 + 30);
        ASSERT_EQ(c->window_end_min, 75);
        ASSERT_TRUE(c->allow_downgrade);
        ASSERT_STREQ(c->support_end, "2028-02-29");
        ASSERT_STREQ(c->health_dir, "/etc/acme/health");
        ASSERT_EQ(c->health_timeout_usec, 2 * MIN_USEC);
        ASSERT_STREQ(c->handlers_dir, "/opt/handlers");
        ASSERT_EQ(c->n_warnings, 0);
}

TEST(defaults)
{
        _cleanup_(config_freep) Config *c = NULL;

        write_str("upkeep.conf", minimal);
        c = load_ok("upkeep.conf");

        ASSERT_STREQ(c->compatible, "acme-gw");
        ASSERT_STREQ(c->version_file, "/etc/os-release");
        ASSERT_STREQ(c->data_dir, CONFIG_DEFAULT_DATA_DIR);
        ASSERT_STREQ(c->keyring, CONFIG_DEFAULT_KEYRING);
        ASSERT_TRUE(c->crl == NULL);
        ASSERT_EQ(c->boot_backend, BOOT_BACKEND_FILE);
        ASSERT_STREQ(c->boot_state_file, CONFIG_DEFAULT_DATA_DIR "/bootenv");
        ASSERT_TRUE(c->boot_booted == NULL);
        ASSERT_TRUE(c->boot_script == NULL);
        ASSERT_STREQ(c->boot_grubenv, "/boot/grub/grubenv");
        ASSERT_TRUE(c->boot_uboot_config == NULL);
        ASSERT_EQ(c->boot_attempts, 3);
        ASSERT_EQ(c->n_slots, 0);
        ASSERT_TRUE(c->slots == NULL);
        ASSERT_EQ(c->source_type, SOURCE_NONE);
        ASSERT_TRUE(c->source_url == NULL);
        ASSERT_TRUE(c->source_metadata_url == NULL);
        ASSERT_TRUE(c->source_targets_url == NULL);
        ASSERT_TRUE(c->source_root == NULL);
        ASSERT_TRUE(c->source_ca == NULL);
        ASSERT_TRUE(c->source_client_cert == NULL);
        ASSERT_TRUE(c->source_client_key == NULL);
        ASSERT_TRUE(c->source_proxy == NULL);
        ASSERT_TRUE(c->source_dir == NULL);
        ASSERT_EQ(c->poll_interval_usec, 6 * HOUR_USEC);
        ASSERT_EQ(c->jitter_usec, 30 * MIN_USEC);
        ASSERT_EQ(c->auto_install, AUTO_INSTALL_ALL);
        ASSERT_EQ(c->reboot, REBOOT_AUTO);
        ASSERT_FALSE(c->has_maintenance_window);
        ASSERT_FALSE(c->allow_downgrade);
        ASSERT_TRUE(c->support_end == NULL);
        ASSERT_STREQ(c->health_dir, CONFIG_DEFAULT_HEALTH_DIR);
        ASSERT_EQ(c->health_timeout_usec, 60 * 1000000ull);
        ASSERT_STREQ(c->handlers_dir, CONFIG_DEFAULT_HANDLERS_DIR);
        ASSERT_EQ(c->n_warnings, 0);
}

TEST(state_file_follows_data_dir_and_slot_defaults)
{
        _cleanup_(config_freep) Config *c = NULL;
        const SlotConfig *s;

        write_str("upkeep.conf", "[boot]\n"
                                 "backend = file\n"
                                 "[device]\n"
                                 "compatible = x\n"
                                 "data-dir = /srv/state\n"
                                 "[slot.rootfs.A]\n"
                                 "device = /images/a.img\n"
                                 "[slot.rootfs.B]\n"
                                 "device = /images/b.img\n"
                                 "[source]\n"
                                 "poll-interval = 10m\n");
        c = load_ok("upkeep.conf");
        ASSERT_STREQ(c->boot_state_file, "/srv/state/bootenv");
        s = config_find_slot(c, "rootfs", "A");
        ASSERT_TRUE(s);
        ASSERT_STREQ(s->bootname, "A");
        ASSERT_STREQ(s->fstype, "ext4");
        ASSERT_EQ(s->size, 0);
        /* a default jitter longer than the poll interval is cut down to it */
        ASSERT_EQ(c->jitter_usec, 10 * MIN_USEC);
}

TEST(conf_d_override_order)
{
        _cleanup_(config_freep) Config *c = NULL;

        write_str("upkeep.conf", "[device]\n"
                                 "compatible = main\n"
                                 "data-dir = /main\n"
                                 "[source]\n"
                                 "type = tuf\n"
                                 "url = https://main.example/\n"
                                 "proxy = http://proxy.main:8080\n"
                                 "[policy]\n"
                                 "reboot = manual\n"
                                 "maintenance-window = 02:00-04:00\n");
        ASSERT_TRUE(mkdir("conf.d", 0755) == 0);
        /* written in the other order, so that directory order is not name order by luck */
        write_str("conf.d/20-second.conf", "[device]\n"
                                           "compatible = second\n"
                                           "[source]\n"
                                           "url = https://second.example/\n");
        write_str("conf.d/10-first.conf", "[device]\n"
                                          "compatible = first\n"
                                          "data-dir = /first\n"
                                          "[source]\n"
                                          "url = https://first.example/\n"
                                          "proxy =\n"
                                          "[policy]\n"
                                          "reboot =\n"
                                          "maintenance-window =   # back to no window\n");
        /* ignored: not *.conf, a folder, a hidden file */
        write_str("conf.d/30-third.conf.bak", "[device]\ncompatible = bak\n");
        write_str("conf.d/.40-hidden.conf", "[device]\ncompatible = hidden\n");
        ASSERT_TRUE(mkdir("conf.d/50-dir.conf", 0755) == 0);

        c = load_ok("upkeep.conf");
        ASSERT_STREQ(c->compatible, "second");
        ASSERT_STREQ(c->data_dir, "/first");
        ASSERT_STREQ(c->source_url, "https://second.example/");
        ASSERT_EQ(c->source_type, SOURCE_TUF);
        /* an empty value goes back to the default */
        ASSERT_TRUE(c->source_proxy == NULL);
        ASSERT_EQ(c->reboot, REBOOT_AUTO);
        ASSERT_FALSE(c->has_maintenance_window);
        ASSERT_STREQ(c->boot_state_file, "/first/bootenv");
        /* a drop-in overriding the main file or an earlier drop-in is what conf.d is for */
        ASSERT_EQ(c->n_warnings, 0);
}

TEST(conf_d_error_names_the_drop_in)
{
        write_str("upkeep.conf", minimal);
        ASSERT_TRUE(mkdir("conf.d", 0755) == 0);
        write_str("conf.d/10-a.conf", "\n[boot]\nattempts = 0\n");
        load_fails("upkeep.conf",
                   "conf.d/10-a.conf:3: [boot] attempts: must be a number from 1 to 16 (got \"0\")");
}

TEST(main_file_in_a_folder)
{
        _cleanup_(config_freep) Config *c = NULL;

        ASSERT_TRUE(mkdir("etc", 0755) == 0);
        ASSERT_TRUE(mkdir("etc/conf.d", 0755) == 0);
        write_str("etc/upkeep.conf", minimal);
        write_str("etc/conf.d/x.conf", "[device]\ncompatible = dropin\n");
        c = load_ok("etc/upkeep.conf");
        ASSERT_STREQ(c->compatible, "dropin");
}

TEST(duplicate_key_later_wins)
{
        _cleanup_(config_freep) Config *c = NULL;

        write_str("upkeep.conf", "[device]\n"
                                 "compatible = one\n"
                                 "[policy]\n"
                                 "auto-install = none\n"
                                 "[device]\n"
                                 "compatible = two\n"
                                 "[policy]\n"
                                 "auto-install = security\n");
        c = load_ok("upkeep.conf");
        ASSERT_STREQ(c->compatible, "two");
        ASSERT_EQ(c->auto_install, AUTO_INSTALL_SECURITY);
        /* but not silently: a warning with both lines */
        ASSERT_EQ(c->n_warnings, 2);
        ASSERT_STREQ(c->warnings[0], "upkeep.conf:6: [device] compatible is set again (first on line 2); "
                                     "the value on line 6 wins");
        ASSERT_STREQ(c->warnings[1],
                     "upkeep.conf:8: [policy] auto-install is set again (first on line 4); the "
                     "value on line 8 wins");
}

TEST(duplicate_key_in_a_drop_in_and_in_a_slot)
{
        _cleanup_(config_freep) Config *c = NULL;

        write_str("upkeep.conf", "[device]\n"
                                 "compatible = main\n"
                                 "[slot.rootfs.A]\n"
                                 "device = /dev/sda1\n"
                                 "[slot.rootfs.B]\n"
                                 "device = /dev/sda2\n"
                                 "[slot.rootfs.A]\n"
                                 "size = 1M\n"
                                 "device = /dev/sda3\n"
                                 "device = /dev/sda4\n");
        ASSERT_TRUE(mkdir("conf.d", 0755) == 0);
        /* once in a drop-in: an override, no warning; twice: a warning naming the drop-in */
        write_str("conf.d/10-a.conf", "[device]\n"
                                      "compatible = a\n"
                                      "[slot.rootfs.B]\n"
                                      "device = /dev/sdb2\n"
                                      "[device]\n"
                                      "compatible =\n"
                                      "compatible = b\n");
        c = load_ok("upkeep.conf");
        ASSERT_STREQ(c->compatible, "b");
        ASSERT_STREQ(config_find_slot(c, "rootfs", "A")->device, "/dev/sda4");
        ASSERT_STREQ(config_find_slot(c, "rootfs", "B")->device, "/dev/sdb2");
        ASSERT_EQ(c->n_warnings, 4);
        ASSERT_STREQ(c->warnings[0], "upkeep.conf:9: [slot.rootfs.A] device is set again (first on line 4); "
                                     "the value on line 9 wins");
        ASSERT_STREQ(c->warnings[1],
                     "upkeep.conf:10: [slot.rootfs.A] device is set again (first on line 9); "
                     "the value on line 10 wins");
        ASSERT_STREQ(c->warnings[2],
                     "conf.d/10-a.conf:6: [device] compatible is set again (first on line 2); "
                     "the value on line 6 wins");
        ASSERT_STREQ(c->warnings[3],
                     "conf.d/10-a.conf:7: [device] compatible is set again (first on line 6); "
                     "the value on line 7 wins");
}

TEST(inline_comments_and_blanks)
{
        _cleanup_(config_freep) Config *c = NULL;

        write_str("upkeep.conf", "\xEF\xBB\xBF# comment\r\n"
                                 "; another comment\n"
                                 "[device]   # section comment\n"
                                 "compatible = acme-gw   # must equal a bundle's \"compatible\"\n"
                                 "   version-file=/etc/os-release\t; indented, ';' comment\n"
                                 "    # indented comment\n"
                                 "\n"
                                 "[source]\r\n"
                                 "url = https://example.com/a#b;c   # '#' inside a value stays\r\n"
                                 "  poll-interval = 2h\n");
        c = load_ok("upkeep.conf");
        ASSERT_STREQ(c->compatible, "acme-gw");
        ASSERT_STREQ(c->version_file, "/etc/os-release");
        ASSERT_STREQ(c->source_url, "https://example.com/a#b;c");
        ASSERT_EQ(c->poll_interval_usec, 2 * HOUR_USEC);
        ASSERT_EQ(c->n_warnings, 0);
}

TEST(unknown_key_is_a_warning)
{
        _cleanup_(config_freep) Config *c = NULL;

        write_str("upkeep.conf", "[device]\n"
                                 "compatible = acme\n"
                                 "colour = blue\n"
                                 "[frobnicate]\n"
                                 "speed = 3\n"
                                 "[slot.rootfs.A]\n"
                                 "device = /dev/sda1\n"
                                 "label = root\n"
                                 "[slot.rootfs.B]\n"
                                 "device = /dev/sda2\n");
        c = load_ok("upkeep.conf");
        ASSERT_STREQ(c->compatible, "acme");
        ASSERT_EQ(c->n_warnings, 3);
        ASSERT_STREQ(c->warnings[0], "upkeep.conf:3: unknown key \"colour\" in [device], ignored");
        ASSERT_STREQ(c->warnings[1], "upkeep.conf:5: unknown key \"speed\" in [frobnicate], ignored");
        ASSERT_STREQ(c->warnings[2], "upkeep.conf:8: unknown key \"label\" in [slot.rootfs.A], ignored");
}

/* What others may change (or read, for the client key) is trusted only with a warning. */
TEST(untrusted_files_are_warned_about)
{
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *keyring = test_cwd_path("keyring.pem"), *crl = test_cwd_path("keyring.crl"),
                            *root = test_cwd_path("root.json"), *key = test_cwd_path("client.key"),
                            *text = NULL, *want = NULL;
        static const char *const files[] = { "keyring.pem", "keyring.crl", "root.json", "client.key" };

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                write_str(files[i], "x");
                ASSERT_OK(chmod(files[i], 0644));
        }
        text = strdup_printf("[device]\ncompatible = acme\n[keyring]\npath = %s\ncrl = %s\n"
                             "[source]\nroot = %s\nclient-key = %s\n",
                             keyring, crl, root, key);
        write_str("upkeep.conf", text);
        ASSERT_OK(mkdir("conf.d", 0755));
        write_str("conf.d/10-local.conf", "[device]\ncompatible = acme\n");
        ASSERT_OK(chmod("upkeep.conf", 0644));
        ASSERT_OK(chmod("conf.d/10-local.conf", 0644));
        ASSERT_OK(chmod("client.key", 0600));
        c = load_ok("upkeep.conf");
        ASSERT_EQ(c->n_warnings, 0);
        c = config_free(c);

        ASSERT_OK(chmod("upkeep.conf", 0666));
        ASSERT_OK(chmod("conf.d", 0777));
        ASSERT_OK(chmod("conf.d/10-local.conf", 0666));
        ASSERT_OK(chmod("keyring.pem", 0646));
        ASSERT_OK(chmod("keyring.crl", 0666));
        ASSERT_OK(chmod("root.json", 0666));
        ASSERT_OK(chmod("client.key", 0604));
        c = load_ok("upkeep.conf");
        ASSERT_EQ(c->n_warnings, 7);
        ASSERT_STREQ(
                c->warnings[0],
                "configuration: upkeep.conf is writable by others (mode 0666): run chmod o-w upkeep.conf");
        ASSERT_TRUE(strstr(c->warnings[1],
                           "configuration: conf.d/10-local.conf is writable by others (mode 0666)"));
        ASSERT_STREQ(c->warnings[2],
                     "configuration folder: conf.d is writable by others (mode 0777): run chmod o-w conf.d");
        want = strdup_printf("[keyring] path: %s is writable by others (mode 0646): run chmod o-w %s",
                             keyring, keyring);
        ASSERT_STREQ(c->warnings[3], want);
        ASSERT_TRUE(strneq(c->warnings[4], "[keyring] crl: ", 15));
        ASSERT_TRUE(strneq(c->warnings[5], "[source] root: ", 15));
        free(want);
        want = strdup_printf(
                "[source] client-key: %s is readable by others (mode 0604), but holds a secret: "
                "run chmod o-r %s",
                key, key);
        ASSERT_STREQ(c->warnings[6], want);
}

TEST(warnings_are_capped)
{
        _cleanup_(config_freep) Config *c = NULL;
        char buf[16384];
        size_t n = 0;

        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "[device]\ncompatible = a\n");
        for (int i = 0; i < CONFIG_WARNINGS_MAX + 10; i++)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "k%d = v\n", i);
        test_write_file("upkeep.conf", buf, n);
        c = load_ok("upkeep.conf");
        ASSERT_EQ(c->n_warnings, CONFIG_WARNINGS_MAX + 1);
        ASSERT_STREQ(c->warnings[0], "upkeep.conf:3: unknown key \"k0\" in [device], ignored");
        ASSERT_STREQ(c->warnings[CONFIG_WARNINGS_MAX], "... and 10 more unknown keys, ignored");
}

TEST(repeat_warnings_are_capped_too)
{
        _cleanup_(config_freep) Config *c = NULL;
        char buf[16384];
        size_t n = 0;

        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "[device]\nunknown = 1\n");
        for (int i = 0; i < CONFIG_WARNINGS_MAX + 5; i++)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "compatible = v%d\n", i);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "unknown2 = 1\n");
        test_write_file("upkeep.conf", buf, n);
        c = load_ok("upkeep.conf");
        ASSERT_STREQ(c->compatible, "v68");
        ASSERT_EQ(c->n_warnings, CONFIG_WARNINGS_MAX + 2);
        ASSERT_STREQ(c->warnings[1],
                     "upkeep.conf:4: [device] compatible is set again (first on line 3); the "
                     "value on line 4 wins");
        ASSERT_STREQ(c->warnings[CONFIG_WARNINGS_MAX], "... and 1 more unknown keys, ignored");
        ASSERT_STREQ(c->warnings[CONFIG_WARNINGS_MAX + 1], "... and 5 more keys set twice in one file");
}

TEST(missing_main_file)
{
        UpkErr e = { 0 };
        Config *c = NULL;

        ASSERT_UPK_ERR(config_load("nothere.conf", &c, &e), &e, -ENOENT, UPK_ERR_IO,
                       "nothere.conf: cannot read: No such file or directory");
        ASSERT_TRUE(c == NULL);
}

TEST(missing_compatible)
{
        write_str("upkeep.conf", "[device]\ndata-dir = /x\n");
        load_fails("upkeep.conf", "upkeep.conf: [device] compatible: required key is missing");
}

TEST(compatible_unset_by_drop_in)
{
        write_str("upkeep.conf", minimal);
        ASSERT_TRUE(mkdir("conf.d", 0755) == 0);
        write_str("conf.d/a.conf", "[device]\ncompatible =\n");
        load_fails("upkeep.conf", "upkeep.conf: [device] compatible: required key is missing");
}

TEST(slot_class_with_only_a)
{
        write_str("upkeep.conf", "[device]\n"
                                 "compatible = x\n"
                                 "[slot.rootfs.A]\n"
                                 "device = /dev/sda1\n");
        load_fails(
                "upkeep.conf",
                "upkeep.conf:4: [slot.rootfs.A]: slot class \"rootfs\" has slot A but no [slot.rootfs.B]");
}

TEST(slot_without_device)
{
        write_str("upkeep.conf", "[device]\n"
                                 "compatible = x\n"
                                 "[slot.rootfs.A]\n"
                                 "device = /dev/sda1\n"
                                 "[slot.rootfs.B]\n"
                                 "bootname = b\n");
        load_fails("upkeep.conf", "upkeep.conf:6: [slot.rootfs.B] device: required key is missing");
}

TEST(slots_share_a_device)
{
        write_str("upkeep.conf", "[device]\n"
                                 "compatible = x\n"
                                 "[slot.rootfs.A]\n"
                                 "device = /dev/sda1\n"
                                 "[slot.rootfs.B]\n"
                                 "device = /dev/sda2\n");
        ASSERT_TRUE(mkdir("conf.d", 0755) == 0);
        write_str("conf.d/10-oops.conf", "[slot.rootfs.B]\n"
                                         "device = /dev/sda1\n");
        load_fails("upkeep.conf", "conf.d/10-oops.conf:2: [slot.rootfs.B] device: the same device as "
                                  "[slot.rootfs.A] (got \"/dev/sda1\")");
}

TEST(bad_slot_class)
{
        write_str("upkeep.conf", "[device]\n"
                                 "compatible = x\n"
                                 "[slot.RootFS.A]\n"
                                 "device = /dev/sda1\n");
        load_fails("upkeep.conf", "upkeep.conf:4: [slot.RootFS.A] device: the slot class must be 1 to 64 "
                                  "characters a-z, 0-9, '_' or '-' (got \"RootFS\")");
}

TEST(bad_slot_name)
{
        write_str("upkeep.conf", "[device]\n"
                                 "compatible = x\n"
                                 "[slot.rootfs.C]\n"
                                 "device = /dev/sda1\n");
        load_fails("upkeep.conf",
                   "upkeep.conf:4: [slot.rootfs.C] device: the slot name must be A or B (got \"C\")");
}

TEST(slot_section_without_name)
{
        write_str("upkeep.conf", "[slot.rootfs]\n"
                                 "device = /dev/sda1\n");
        load_fails("upkeep.conf", "upkeep.conf:2: [slot.rootfs] device: the section must be named "
                                  "[slot.CLASS.A] or [slot.CLASS.B]");
}

TEST(too_many_slots)
{
        char buf[8192];
        size_t n = 0;

        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "[device]\ncompatible = a\n");
        for (int i = 0; i <= CONFIG_SLOTS_MAX / 2; i++)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                                      "[slot.c%d.A]\ndevice = /dev/a%d\n[slot.c%d.B]\ndevice = /dev/b%d\n",
                                      i, i, i, i);
        test_write_file("upkeep.conf", buf, n);
        /* slot 33 is [slot.c16.A], on line 2 + 16 * 4 + 2 */
        load_fails("upkeep.conf", "upkeep.conf:68: [slot.c16.A] device: more than 32 slot sections");
}

TEST(script_backend_needs_script)
{
        write_str("upkeep.conf", "[device]\n"
                                 "compatible = x\n"
                                 "[boot]\n"
                                 "backend = script\n");
        load_fails("upkeep.conf", "upkeep.conf:4: [boot] backend: the script backend needs [boot] script = "
                                  "PATH (got \"script\")");
}

TEST(jitter_above_poll_interval)
{
        write_str("upkeep.conf", "[device]\n"
                                 "compatible = x\n"
                                 "[source]\n"
                                 "poll-interval = 1h\n"
                                 "jitter = 2h\n");
        load_fails("upkeep.conf",
                   "upkeep.conf:5: [source] jitter: must not exceed poll-interval (3600s) (got 7200s)");
}

TEST(syntax_error)
{
        write_str("upkeep.conf", "[device]\n"
                                 "compatible = x\n"
                                 "this line has no equals sign\n"
                                 "[boot\n");
        load_fails("upkeep.conf", "upkeep.conf:3: syntax error: expected \"[section]\" or \"key = value\"");
}

TEST(syntax_error_before_bad_value)
{
        write_str("upkeep.conf", "[device]\n"
                                 "junk\n"
                                 "version-file = relative\n");
        load_fails("upkeep.conf", "upkeep.conf:2: syntax error: expected \"[section]\" or \"key = value\"");
}

TEST(bad_value_before_syntax_error)
{
        write_str("upkeep.conf", "[device]\n"
                                 "version-file = relative\n"
                                 "junk\n");
        load_fails("upkeep.conf",
                   "upkeep.conf:2: [device] version-file: must be an absolute path (got \"relative\")");
}

TEST(nul_byte)
{
        static const char text[] = "[device]\ncompatible = a\0b\n";
        test_write_file("upkeep.conf", text, sizeof(text) - 1);
        load_fails("upkeep.conf", "upkeep.conf:2: contains a NUL byte");
}

TEST(long_line)
{
        char buf[600];
        size_t n = (size_t)snprintf(buf, sizeof(buf), "[device]\ncompatible = x\nversion-file = /");
        memset(buf + n, 'a', 400);
        n += 400;
        buf[n++] = '\n';
        test_write_file("upkeep.conf", buf, n);

        UpkErr e = { 0 };
        Config *c = NULL;
        ASSERT_UPK_ERR(config_load("upkeep.conf", &c, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "upkeep.conf:3: line longer than ");
}

TEST(oversized_file)
{
        size_t size = CONFIG_FILE_SIZE_MAX + 1;
        char *buf = malloc(size);
        UpkErr e = { 0 };
        Config *c = NULL;

        ASSERT_TRUE(buf);
        memset(buf, '\n', size);
        memcpy(buf, minimal, strlen(minimal));
        test_write_file("upkeep.conf", buf, size);
        free(buf);
        ASSERT_UPK_ERR(config_load("upkeep.conf", &c, &e), &e, -EFBIG, UPK_ERR_CONFIG,
                       "upkeep.conf: larger than the limit of 262144 bytes");
        ASSERT_TRUE(c == NULL);

        /* exactly at the limit is fine */
        buf = malloc(size - 1);
        ASSERT_TRUE(buf);
        memset(buf, '\n', size - 1);
        memcpy(buf, minimal, strlen(minimal));
        test_write_file("upkeep.conf", buf, size - 1);
        free(buf);
        ASSERT_OK_E(config_load("upkeep.conf", &c, &e), &e);
        config_free(c);
}

TEST(main_file_is_a_folder)
{
        UpkErr e = { 0 };
        Config *c = NULL;

        ASSERT_TRUE(mkdir("upkeep.conf", 0755) == 0);
        ASSERT_UPK_ERR(config_load("upkeep.conf", &c, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "upkeep.conf: not a regular file");
}

/* Each invalid value class: the file, line, section, key, reason and the value are named. The bad line
 * is always line 3 after "[device]\ncompatible = x\n" and a section header on line 3 moves it to 4. */
TEST(invalid_values)
{
        static const struct {
                const char *section, *key, *value, *reason;
        } cases[] = {
                { "device", "compatible", "acme gw",
                  "must be 1 to 128 characters A-Z, a-z, 0-9, '.', '_', '+' or '-'" },
                { "device", "compatible", "acme/gw",
                  "must be 1 to 128 characters A-Z, a-z, 0-9, '.', '_', '+' or '-'" },
                { "device", "version-file", "etc/os-release", "must be an absolute path" },
                { "device", "data-dir", "~/upkeep", "must be an absolute path" },
                { "keyring", "path", "keyring.pem", "must be an absolute path" },
                { "keyring", "crl", "x.crl", "must be an absolute path" },
                { "boot", "backend", "efi", "must be file, uboot, grub or script" },
                { "boot", "backend", "FILE", "must be file, uboot, grub or script" },
                { "boot", "state-file", "bootenv", "must be an absolute path" },
                { "boot", "booted", "C", "must be a slot name, A or B" },
                { "boot", "booted", "a", "must be a slot name, A or B" },
                { "boot", "script", "boot.sh", "must be an absolute path" },
                { "boot", "grubenv", "grubenv", "must be an absolute path" },
                { "boot", "uboot-config", "fw_env.config", "must be an absolute path" },
                { "boot", "attempts", "0", "must be a number from 1 to 16" },
                { "boot", "attempts", "17", "must be a number from 1 to 16" },
                { "boot", "attempts", "-1", "must be a number from 1 to 16" },
                { "boot", "attempts", "three", "must be a number from 1 to 16" },
                { "slot.rootfs.A", "device", "dev/sda1", "must be an absolute path" },
                { "slot.rootfs.A", "bootname", "sys tem",
                  "must be 1 to 64 characters A-Z, a-z, 0-9, '_' or '-'" },
                { "slot.rootfs.A", "bootname", "a.b",
                  "must be 1 to 64 characters A-Z, a-z, 0-9, '_' or '-'" },
                { "slot.rootfs.A", "size", "64MB",
                  "must be a size in bytes above 0, with an optional K, M, G or T (binary) suffix" },
                { "slot.rootfs.A", "size", "0",
                  "must be a size in bytes above 0, with an optional K, M, G or T (binary) suffix" },
                { "slot.rootfs.A", "size", "99999999999T",
                  "must be a size in bytes above 0, with an optional K, M, G or T (binary) suffix" },
                { "slot.rootfs.A", "fstype", "EXT4", "must be 1 to 16 characters a-z or 0-9" },
                { "slot.rootfs.A", "fstype", "averyveryverylongfs",
                  "must be 1 to 16 characters a-z or 0-9" },
                { "source", "type", "ftp", "must be none, tuf, hawkbit or local" },
                { "source", "url", "ftp://example.com/", "must be a URL starting with http:// or https://" },
                { "source", "url", "https://", "must be a URL starting with http:// or https://" },
                { "source", "metadata-url", "example.com/m",
                  "must be a URL starting with http:// or https://" },
                { "source", "targets-url", "https://a b/",
                  "must be a URL starting with http:// or https://" },
                { "source", "root", "root.json", "must be an absolute path" },
                { "source", "ca", "ca.pem", "must be an absolute path" },
                { "source", "client-cert", "c.pem", "must be an absolute path" },
                { "source", "client-key", "c.key", "must be an absolute path" },
                { "source", "proxy", "proxy.lan",
                  "must be none, a proxy URL (http, https, socks4, socks4a, socks5, socks5h) or HOST:PORT" },
                { "source", "proxy", "proxy.lan:99999",
                  "must be none, a proxy URL (http, https, socks4, socks4a, socks5, socks5h) or HOST:PORT" },
                { "source", "proxy", "ftp://proxy:21",
                  "must be none, a proxy URL (http, https, socks4, socks4a, socks5, socks5h) or HOST:PORT" },
                { "source", "dir", "media/usb", "must be an absolute path" },
                { "source", "poll-interval", "59s", "must be from 1m to 30d" },
                { "source", "poll-interval", "31d", "must be from 1m to 30d" },
                { "source", "poll-interval", "6 hours",
                  "must be a duration such as 45s, 30m, 6h, 1d or 1h30m" },
                { "source", "jitter", "31d", "must be from 0 to 30d" },
                { "source", "jitter", "soon", "must be a duration such as 45s, 30m, 6h, 1d or 1h30m" },
                { "policy", "auto-install", "yes", "must be all, security or none" },
                { "policy", "reboot", "never", "must be auto or manual" },
                { "policy", "maintenance-window", "2:00-4:00", "must be HH:MM-HH:MM (24-hour clock)" },
                { "policy", "maintenance-window", "02:00-24:00", "must be HH:MM-HH:MM (24-hour clock)" },
                { "policy", "maintenance-window", "02:60-04:00", "must be HH:MM-HH:MM (24-hour clock)" },
                { "policy", "maintenance-window", "02:00", "must be HH:MM-HH:MM (24-hour clock)" },
                { "policy", "maintenance-window", "03:00-03:00", "start and end must differ" },
                { "policy", "allow-downgrade", "maybe", "must be yes, no, true, false, 1 or 0" },
                { "policy", "allow-downgrade", "YES", "must be yes, no, true, false, 1 or 0" },
                { "policy", "support-end", "2027-02-29", "must be a valid date YYYY-MM-DD" },
                { "policy", "support-end", "2030-13-01", "must be a valid date YYYY-MM-DD" },
                { "policy", "support-end", "2030-1-01", "must be a valid date YYYY-MM-DD" },
                { "policy", "support-end", "31.12.2030", "must be a valid date YYYY-MM-DD" },
                { "health", "dir", "health.d", "must be an absolute path" },
                { "health", "timeout", "0s", "must be from 1s to 1h" },
                { "health", "timeout", "61m", "must be from 1s to 1h" },
                { "health", "timeout", "1x", "must be a duration such as 45s, 30m, 6h, 1d or 1h30m" },
                { "install", "handlers-dir", "handlers", "must be an absolute path" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char text[1024], want[1024];
                int n;

                n = snprintf(text, sizeof(text), "[device]\ncompatible = x\n[%s]\n%s = %s   # comment\n",
                             cases[i].section, cases[i].key, cases[i].value);
                ASSERT_TRUE(n > 0 && (size_t)n < sizeof(text));
                test_write_file("upkeep.conf", text, (size_t)n);
                snprintf(want, sizeof(want), "upkeep.conf:4: [%s] %s: %s (got \"%s\")", cases[i].section,
                         cases[i].key, cases[i].reason, cases[i].value);
                load_fails("upkeep.conf", want);
        }
}

TEST(attributes_section)
{
        _cleanup_(config_freep) Config *c = NULL;

        write_str("upkeep.conf", "[device]\ncompatible = x\n[attributes]\nsite = plant 4\nhw.rev = B2\n"
                                 "site = plant 5\n");
        c = load_ok("upkeep.conf");
        ASSERT_EQ(c->n_attributes, 2u);
        ASSERT_STREQ(c->attributes[0], "site");
        ASSERT_STREQ(c->attributes[1], "plant 5"); /* the later value wins */
        ASSERT_STREQ(c->attributes[2], "hw.rev");
        ASSERT_STREQ(c->attributes[3], "B2");
        ASSERT_TRUE(c->attributes[4] == NULL);

        write_str("upkeep.conf", "[device]\ncompatible = x\n[attributes]\nsi/te = 1\n");
        load_fails("upkeep.conf", "upkeep.conf:4: [attributes] si/te: the name must have 1 to 128 letters, "
                                  "digits, '-', '_' or '.' (got \"1\")");
        write_str("upkeep.conf", "[device]\ncompatible = x\n[attributes]\nsite = caf\xc3\xa9\n");
        load_fails("upkeep.conf", "upkeep.conf:4: [attributes] site: must be printable ASCII (hawkBit "
                                  "refuses the rest) (got \"caf\xc3\xa9\")");
}

TEST(control_character_in_value)
{
        write_str("upkeep.conf", "[device]\ncompatible = x\x01y\n");
        load_fails("upkeep.conf",
                   "upkeep.conf:2: [device] compatible: contains a control character (got \"x?y\")");
}

TEST(string_tables)
{
        for (int i = 0; i < _BOOT_BACKEND_MAX; i++)
                ASSERT_EQ(boot_backend_type_from_string(boot_backend_type_to_string(i)), i);
        for (int i = 0; i < _SOURCE_MAX; i++)
                ASSERT_EQ(source_type_from_string(source_type_to_string(i)), i);
        for (int i = 0; i < _AUTO_INSTALL_MAX; i++)
                ASSERT_EQ(auto_install_from_string(auto_install_to_string(i)), i);
        for (int i = 0; i < _REBOOT_MAX; i++)
                ASSERT_EQ(reboot_policy_from_string(reboot_policy_to_string(i)), i);
        ASSERT_STREQ(boot_backend_type_to_string(BOOT_BACKEND_UBOOT), "uboot");
        ASSERT_STREQ(source_type_to_string(SOURCE_HAWKBIT), "hawkbit");
        ASSERT_STREQ(auto_install_to_string(AUTO_INSTALL_SECURITY), "security");
        ASSERT_STREQ(reboot_policy_to_string(REBOOT_MANUAL), "manual");
        ASSERT_EQ(boot_backend_type_from_string("efi"), -EINVAL);
        ASSERT_EQ(boot_backend_type_from_string(NULL), -EINVAL);
        ASSERT_EQ(source_type_from_string("TUF"), -EINVAL);
        ASSERT_EQ(auto_install_from_string(""), -EINVAL);
        ASSERT_EQ(reboot_policy_from_string("never"), -EINVAL);
        ASSERT_TRUE(boot_backend_type_to_string(_BOOT_BACKEND_MAX) == NULL);
        ASSERT_TRUE(source_type_to_string(_SOURCE_INVALID) == NULL);
}

TEST(free_null)
{
        ASSERT_TRUE(config_free(NULL) == NULL);
        ASSERT_TRUE(config_find_slot(NULL, "rootfs", "A") == NULL);
}

TEST(proxy_none_is_no_proxy)
{
        _cleanup_(config_freep) Config *c = NULL;

        write_str("upkeep.conf", "[device]\ncompatible = acme-gw\n[source]\nproxy = none\n");
        c = load_ok("upkeep.conf");
        ASSERT_STREQ(c->source_proxy, ""); /* libcurl's "no proxy, not even the environment's" */
}
