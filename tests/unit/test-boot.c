/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Boot backends: the same install-and-confirm and install-and-fall-back scenarios for every backend
 * (file, uboot on a file-backed environment, grub on a grubenv, script with the example script), each
 * with its own simulated bootloader; then parsing, validation and program failures. */
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "boot-rig.h"
#include "boot.h"
#include "fileio.h"
#include "tests.h"

static char slot_a[] = "A", slot_b[] = "B";
static char *const slots_ab[] = { slot_a, slot_b };

static Config *config_new(BootBackendType type)
{
        Config *c = calloc(1, sizeof(Config));
        ASSERT_TRUE(c);
        c->boot_backend = type;
        c->boot_attempts = 3;
        return c;
}

/* The fields this test sets; config_free() is not ours to call. */
static void config_done(Config *c)
{
        free(c->boot_state_file);
        free(c->boot_script);
        free(c->boot_grubenv);
        free(c->boot_uboot_config);
        free(c);
}

static BootBackend *backend(const Config *c)
{
        BootBackend *b = NULL;
        UpkErr e = {};

        ASSERT_OK_E(boot_backend_new(c, slots_ab, 2, &b, &e), &e);
        ASSERT_TRUE(b);
        return b;
}

static void assert_primary(BootBackend *b, const char *want)
{
        _cleanup_free_ char *p = NULL;
        UpkErr e = {};

        ASSERT_OK_E(boot_get_primary(b, &p, &e), &e);
        ASSERT_STREQ(p, want);
}

static void assert_state(BootBackend *b, const char *slot, SlotState want)
{
        SlotState s = _SLOT_STATE_INVALID;
        UpkErr e = {};

        ASSERT_OK_E(boot_get_state(b, slot, &s, &e), &e);
        if (s != want)
                test_fail("state of %s: %s, expected %s", slot, slot_state_to_string(s),
                          slot_state_to_string(want));
}

static void assert_current(const Rig *rig, BootBackend *b, const char *want)
{
        _cleanup_free_ char *cur = NULL;
        UpkErr e = {};

        if (rig->knows_current) {
                ASSERT_OK_E(boot_get_current(b, &cur, &e), &e);
                ASSERT_STREQ(cur, want);
        } else
                ASSERT_UPK_ERR(boot_get_current(b, &cur, &e), &e, -ENODATA, UPK_ERR_IO,
                               "kernel command line");
}

static void assert_reboot(const Rig *rig, const Config *c, const char *want)
{
        _cleanup_free_ char *booted = rig->reboot(c);
        ASSERT_STREQ(booted, want);
}

/* (1) Fresh: A good and primary. Install to B: mark_bad(B), write, set_try(B): B is the primary; the
 * reboot takes B; mark_good(B): B good and primary; later reboots (each confirmed) keep B. */
static void scenario_install_confirm(const Rig *rig)
{
        Config *c = config_new(BOOT_BACKEND_FILE);
        BootBackend *b;
        UpkErr e = {};

        rig->setup(c);
        b = backend(c);
        assert_primary(b, "A");
        assert_state(b, "A", SLOT_STATE_GOOD);
        assert_state(b, "B", SLOT_STATE_BAD);

        ASSERT_OK_E(boot_mark_bad(b, "B", &e), &e);
        assert_state(b, "B", SLOT_STATE_BAD);
        assert_primary(b, "A");
        ASSERT_OK_E(boot_set_try(b, "B", &e), &e);
        assert_primary(b, "B");
        assert_state(b, "B", SLOT_STATE_TRY);
        assert_state(b, "A", SLOT_STATE_GOOD);

        assert_reboot(rig, c, "B");
        assert_current(rig, b, "B");
        assert_state(b, "B", SLOT_STATE_TRY);
        ASSERT_OK_E(boot_mark_good(b, "B", &e), &e);
        assert_state(b, "B", SLOT_STATE_GOOD);
        assert_state(b, "A", SLOT_STATE_GOOD);
        assert_primary(b, "B");

        for (int i = 0; i < 4; i++) {
                assert_reboot(rig, c, "B");
                assert_current(rig, b, "B");
                ASSERT_OK_E(boot_mark_good(b, "B", &e), &e);
                assert_primary(b, "B");
                assert_state(b, "B", SLOT_STATE_GOOD);
        }
        boot_backend_free(b);
        config_done(c);
}

/* (2) set_try(B), the reboot takes B once, nobody confirms it, the next reboot falls back to A: B is not
 * the primary, A is still good; B keeps its try marker until the daemon marks it bad. */
static void scenario_install_fallback(const Rig *rig)
{
        Config *c = config_new(BOOT_BACKEND_FILE);
        BootBackend *b;
        UpkErr e = {};

        rig->setup(c);
        b = backend(c);
        ASSERT_OK_E(boot_set_try(b, "B", &e), &e);
        assert_primary(b, "B");
        assert_reboot(rig, c, "B");
        assert_current(rig, b, "B");
        assert_reboot(rig, c, "A");
        assert_current(rig, b, "A");
        assert_primary(b, "A");
        assert_state(b, "A", SLOT_STATE_GOOD);
        assert_state(b, "B", SLOT_STATE_TRY);

        /* the daemon sees A booted instead of B: B failed */
        ASSERT_OK_E(boot_mark_bad(b, "B", &e), &e);
        ASSERT_OK_E(boot_mark_good(b, "A", &e), &e);
        assert_state(b, "B", SLOT_STATE_BAD);
        assert_state(b, "A", SLOT_STATE_GOOD);
        assert_primary(b, "A");
        assert_reboot(rig, c, "A");
        assert_reboot(rig, c, "A");
        boot_backend_free(b);
        config_done(c);
}

TEST(file_install_confirm)
{
        scenario_install_confirm(&rig_file);
}
TEST(file_install_fallback)
{
        scenario_install_fallback(&rig_file);
}
TEST(uboot_install_confirm)
{
        scenario_install_confirm(&rig_uboot);
}
TEST(uboot_install_fallback)
{
        scenario_install_fallback(&rig_uboot);
}
TEST(grub_install_confirm)
{
        scenario_install_confirm(&rig_grub);
}
TEST(grub_install_fallback)
{
        scenario_install_fallback(&rig_grub);
}
TEST(script_install_confirm)
{
        scenario_install_confirm(&rig_script);
}
TEST(script_install_fallback)
{
        scenario_install_fallback(&rig_script);
}

/* ---- the file backend ---- */

TEST(file_missing_means_a_good)
{
        Config *c = config_new(BOOT_BACKEND_FILE);
        _cleanup_free_ char *cur = NULL, *booted = NULL, *data = NULL;
        BootBackend *b;
        UpkErr e = {};

        file_setup(c);
        b = backend(c);
        assert_primary(b, "A");
        assert_state(b, "A", SLOT_STATE_GOOD);
        assert_state(b, "B", SLOT_STATE_BAD);
        ASSERT_UPK_ERR(boot_get_current(b, &cur, &e), &e, -ENODATA, UPK_ERR_IO, "no BOOTED= entry");
        ASSERT_TRUE(access("bootenv", F_OK) < 0); /* reading writes nothing */

        ASSERT_OK_E(boot_file_simulate_boot("bootenv", &booted, &e), &e);
        ASSERT_STREQ(booted, "A");
        ASSERT_OK(read_full_file("bootenv", 4096, &data, NULL));
        ASSERT_STREQ(data, "BOOT_ORDER=\"A B\"\nBOOT_A_LEFT=2\nBOOT_B_LEFT=0\nBOOTED=A\n");
        boot_backend_free(b);
        config_done(c);
}

TEST(file_writes_exact_format_and_keeps_unknown_keys)
{
        static const char before[] = "# written by the image\n"
                                     "BOOT_ORDER=A B\n"
                                     "\n"
                                     "VENDOR_KEY=\"x y\"\n"
                                     "BOOT_A_LEFT=3\n"
                                     "BOOT_B_LEFT=0\n"
                                     "BOOTED=A\n";
        Config *c = config_new(BOOT_BACKEND_FILE);
        _cleanup_free_ char *data = NULL;
        BootBackend *b;
        UpkErr e = {};

        file_setup(c);
        test_write_file("bootenv", before, strlen(before));
        b = backend(c);
        ASSERT_OK_E(boot_set_try(b, "B", &e), &e);
        ASSERT_OK(read_full_file("bootenv", 4096, &data, NULL));
        ASSERT_STREQ(data, "# written by the image\n"
                           "BOOT_ORDER=\"B A\"\n"
                           "\n"
                           "VENDOR_KEY=\"x y\"\n"
                           "BOOT_A_LEFT=3\n"
                           "BOOT_B_LEFT=1\n"
                           "BOOTED=A\n"
                           "BOOT_B_TRY=1\n");
        free(data);
        ASSERT_OK_E(boot_mark_bad(b, "B", &e), &e);
        ASSERT_OK(read_full_file("bootenv", 4096, &data, NULL));
        ASSERT_STREQ(data, "# written by the image\n"
                           "BOOT_ORDER=\"A B\"\n"
                           "\n"
                           "VENDOR_KEY=\"x y\"\n"
                           "BOOT_A_LEFT=3\n"
                           "BOOT_B_LEFT=0\n"
                           "BOOTED=A\n");
        boot_backend_free(b);
        config_done(c);
}

/* A good slot that is never confirmed again runs out after `attempts` boots. */
TEST(file_attempts_run_out)
{
        Config *c = config_new(BOOT_BACKEND_FILE);
        BootBackend *b;
        UpkErr e = {};

        file_setup(c);
        c->boot_attempts = 2;
        b = backend(c);
        ASSERT_OK_E(boot_set_try(b, "B", &e), &e);
        assert_reboot(&rig_file, c, "B");
        ASSERT_OK_E(boot_mark_good(b, "B", &e), &e);
        assert_reboot(&rig_file, c, "B");
        assert_reboot(&rig_file, c, "B");
        assert_state(b, "B", SLOT_STATE_BAD);
        assert_reboot(&rig_file, c, "A");
        boot_backend_free(b);
        config_done(c);
}

/* No slot has attempts left: no primary; the bootloader boots the first slot that is not an unconfirmed
 * try, and changes no count. */
TEST(file_nothing_left)
{
        static const char text[] = "BOOT_ORDER=\"B A\"\nBOOT_A_LEFT=0\nBOOT_B_LEFT=0\nBOOT_B_TRY=1\n";
        Config *c = config_new(BOOT_BACKEND_FILE);
        _cleanup_free_ char *p = NULL, *data = NULL;
        BootBackend *b;
        UpkErr e = {};

        file_setup(c);
        test_write_file("bootenv", text, strlen(text));
        b = backend(c);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -ENOENT, UPK_ERR_IO, "no bootable slot");
        assert_reboot(&rig_file, c, "A");
        ASSERT_OK(read_full_file("bootenv", 4096, &data, NULL));
        ASSERT_STREQ(data, "BOOT_ORDER=\"B A\"\nBOOT_A_LEFT=0\nBOOT_B_LEFT=0\nBOOT_B_TRY=1\nBOOTED=A\n");
        boot_backend_free(b);
        config_done(c);
}

/* A message holds no control character: what a boot environment or a script printed is flattened. */
static void assert_printable(const char *msg)
{
        for (const char *p = msg; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        test_fail("control character 0x%02x in \"%s\"", (unsigned)(unsigned char)*p, msg);
}

TEST(file_malformed_lines)
{
        static const struct {
                const char *text;
                const char *msg;
        } cases[] = {
                { "BOOT_ORDER=\"A B\"\nnonsense\n", "bootenv:2: expected KEY=VALUE" },
                { "BOOT_ORDER=\"A B\"\nBOOT_A_LEFT=x\n", "bootenv:2: BOOT_A_LEFT: \"x\" is not a number" },
                { "BOOT_A_LEFT=17\n",
                  "bootenv:1: BOOT_A_LEFT: \"17\" is not a number of attempts from 0 to 16" },
                { "BOOT_A_LEFT=-1\n", "bootenv:1: BOOT_A_LEFT" },
                { "BOOT_ORDER=\"A B\n", "bootenv:1: the value's closing quote is missing" },
                { "BOOT_ORDER=A \"B\"\n", "bootenv:1: the value holds a quote" },
                { "BOOT_ORDER=\"A C\"\n", "bootenv:1: BOOT_ORDER: \"C\" is not one of the boot slots" },
                { "BOOT_ORDER=\"A A\"\n", "bootenv:1: BOOT_ORDER: slot \"A\" is listed twice" },
                { "BOOT_A_TRY=2\n", "bootenv:1: BOOT_A_TRY: \"2\" is neither 0 nor 1" },
                { "BOOTED=Z\n", "bootenv:1: BOOTED: \"Z\" is not one of the boot slots" },
                { "BOOT_A_LEFT=1\n\nBOOT_A_LEFT=2\n", "bootenv:3: BOOT_A_LEFT is already set on line 1" },
                { "1KEY=3\n", "bootenv:1: \"1KEY\" is not a key" },
                { " BOOT_A_LEFT=3\n", "bootenv:1: \" BOOT_A_LEFT\" is not a key" },
                { "BOOT_A_LEFT = 3\n", "bootenv:1: \"BOOT_A_LEFT \" is not a key" },
                { "=3\n", "bootenv:1: the key is empty" },
                { "A\x1b[2J=1\n", "bootenv:1: \"A [2J\" is not a key" },
                { "BOOT_A_LEFT=3\r\n", "bootenv:1: the value holds a quote or a control character" },
        };
        Config *c = config_new(BOOT_BACKEND_FILE);
        BootBackend *b;

        file_setup(c);
        b = backend(c);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *p = NULL;
                UpkErr e = {};

                test_write_file("bootenv", cases[i].text, strlen(cases[i].text));
                ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EBADMSG, UPK_ERR_CONFIG, cases[i].msg);
                ASSERT_UPK_ERR(boot_mark_good(b, "A", &e), &e, -EBADMSG, UPK_ERR_CONFIG, cases[i].msg);
                /* a broken file is not overwritten */
                _cleanup_free_ char *data = NULL;
                ASSERT_OK(read_full_file("bootenv", 4096, &data, NULL));
                ASSERT_STREQ(data, cases[i].text);
        }
        {
                UpkErr e = {};
                test_write_file("bootenv", "BOOT_ORDER=A\0B\n", 15);
                ASSERT_UPK_ERR(boot_mark_good(b, "A", &e), &e, -EBADMSG, UPK_ERR_CONFIG, "holds a NUL byte");
                ASSERT_UPK_ERR(boot_file_simulate_boot("bootenv", NULL, &e), &e, -EBADMSG, UPK_ERR_CONFIG,
                               "holds a NUL byte");
        }
        boot_backend_free(b);
        config_done(c);
}

TEST(file_too_large)
{
        Config *c = config_new(BOOT_BACKEND_FILE);
        _cleanup_free_ char *big = malloc(70000), *p = NULL;
        BootBackend *b;
        UpkErr e = {};

        ASSERT_TRUE(big);
        memset(big, '#', 70000);
        file_setup(c);
        test_write_file("bootenv", big, 70000);
        b = backend(c);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EFBIG, UPK_ERR_CONFIG, "larger than 65536 bytes");
        boot_backend_free(b);
        config_done(c);
}

TEST(file_simulate_uses_boot_order_slots)
{
        static const char text[] =
                "BOOT_ORDER=\"rootfs1 rootfs0\"\nBOOT_rootfs0_LEFT=3\nBOOT_rootfs1_LEFT=0\n";
        _cleanup_free_ char *booted = NULL;
        UpkErr e = {};

        test_write_file("env", text, strlen(text));
        ASSERT_OK_E(boot_file_simulate_boot("env", &booted, &e), &e);
        ASSERT_STREQ(booted, "rootfs0");
        test_write_file("env", "BOOT_ORDER=\"\"\n", 14);
        ASSERT_UPK_ERR(boot_file_simulate_boot("env", NULL, &e), &e, -ENOENT, UPK_ERR_IO,
                       "BOOT_ORDER is empty");
        test_write_file("env", "BOOT_ORDER=\"A-1\"\n", 17);
        ASSERT_UPK_ERR(boot_file_simulate_boot("env", NULL, &e), &e, -EBADMSG, UPK_ERR_CONFIG,
                       "env:1: BOOT_ORDER: \"A-1\" is not a valid slot name");
}

/* ---- validation in boot_backend_new() and on every call ---- */

TEST(unknown_slot_rejected)
{
        Config *c = config_new(BOOT_BACKEND_FILE);
        SlotState s;
        BootBackend *b;
        UpkErr e = {};

        file_setup(c);
        b = backend(c);
        ASSERT_UPK_ERR(boot_mark_good(b, "C", &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "slot \"C\" is not one of the boot slots (A B)");
        ASSERT_UPK_ERR(boot_set_try(b, "a", &e), &e, -ENOENT, UPK_ERR_CONFIG, "slot \"a\"");
        ASSERT_UPK_ERR(boot_mark_bad(b, "", &e), &e, -ENOENT, UPK_ERR_CONFIG, "slot \"\"");
        ASSERT_UPK_ERR(boot_get_state(b, "A B", &s, &e), &e, -ENOENT, UPK_ERR_CONFIG, "slot \"A B\"");
        ASSERT_TRUE(access("bootenv", F_OK) < 0);
        boot_backend_free(b);
        config_done(c);
}

TEST(backend_new_validates)
{
        static char b1[] = "B-1", none[] = "";
        static char *const bad_name[] = { slot_a, b1 }, *const twice[] = { slot_a, slot_a },
                           *const empty[] = { none };
        Config *c = config_new(BOOT_BACKEND_FILE);
        BootBackend *b = NULL;
        UpkErr e = {};

        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "[boot] state-file: not set");
        c->boot_state_file = strdup("/nonexistent-dir/bootenv");
        ASSERT_UPK_ERR(
                boot_backend_new(c, slots_ab, 2, &b, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                "[boot] state-file: /nonexistent-dir/bootenv: its folder /nonexistent-dir does not exist");
        free(c->boot_state_file);
        file_setup(c);
        ASSERT_UPK_ERR(boot_backend_new(c, bad_name, 2, &b, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "slot bootname \"B-1\" is not valid");
        ASSERT_UPK_ERR(boot_backend_new(c, twice, 2, &b, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "slot bootname \"A\" is given twice");
        ASSERT_UPK_ERR(boot_backend_new(c, empty, 1, &b, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "slot bootname \"\" is not valid");
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 0, &b, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "0 slots given");
        c->boot_attempts = 17;
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -ERANGE, UPK_ERR_CONFIG,
                       "[boot] attempts: 17 is above the maximum of 16");
        c->boot_attempts = 0; /* the default, 3 */
        c->boot_backend = (BootBackendType)7;
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "[boot] backend: unknown backend type 7");
        ASSERT_TRUE(!b);

        c->boot_backend = BOOT_BACKEND_SCRIPT;
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "[boot] script: not set");
        c->boot_script = test_cwd_path("nope.sh");
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "[boot] script: ");
        test_write_file("nope.sh", "#!/bin/sh\n", 10);
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -EACCES, UPK_ERR_CONFIG,
                       "is not executable");
        /* a script others may change is not run as root */
        ASSERT_OK(chmod("nope.sh", 0757));
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -EPERM, UPK_ERR_CONFIG,
                       "[boot] script refused: ");
        ASSERT_TRUE(strstr(e.msg, "nope.sh is writable by others (mode 0757): run chmod o-w "));
        ASSERT_TRUE(!b);
        free(c->boot_script);
        c->boot_script = strdup("nope.sh");
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "[boot] script: nope.sh is not an absolute path");

        c->boot_backend = BOOT_BACKEND_UBOOT;
        c->boot_uboot_config = test_cwd_path("missing.config");
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "[boot] uboot-config: ");

        c->boot_backend = BOOT_BACKEND_GRUB;
        c->boot_grubenv = strdup("/nonexistent-dir/grubenv");
        ASSERT_UPK_ERR(
                boot_backend_new(c, slots_ab, 2, &b, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                "[boot] grubenv: /nonexistent-dir/grubenv: its folder /nonexistent-dir does not exist");
        config_done(c);
}

TEST(slot_state_strings)
{
        ASSERT_STREQ(slot_state_to_string(SLOT_STATE_GOOD), "good");
        ASSERT_STREQ(slot_state_to_string(SLOT_STATE_TRY), "try");
        ASSERT_STREQ(slot_state_to_string(SLOT_STATE_BAD), "bad");
        ASSERT_TRUE(slot_state_to_string(_SLOT_STATE_MAX) == NULL);
        ASSERT_TRUE(slot_state_to_string(_SLOT_STATE_INVALID) == NULL);
        for (int s = 0; s < _SLOT_STATE_MAX; s++)
                ASSERT_EQ(slot_state_from_string(slot_state_to_string((SlotState)s)), s);
        ASSERT_EQ(slot_state_from_string("Good"), _SLOT_STATE_INVALID);
        ASSERT_EQ(slot_state_from_string(""), _SLOT_STATE_INVALID);
        ASSERT_EQ(slot_state_from_string(NULL), _SLOT_STATE_INVALID);
}

/* ---- missing tools ---- */

TEST(uboot_missing_tools)
{
        Config *c = config_new(BOOT_BACKEND_UBOOT);
        _cleanup_free_ char *p = NULL;
        BootBackend *b = NULL;
        UpkErr e = {};

        /* glibc's posix_spawn() learns of a failed execve() from the child through the memory that
         * CLONE_VM|CLONE_VFORK shares; qemu-user runs that clone as a plain fork, so a missing program shows
         * up as exit status 127 instead of ENOENT there. Real devices run no emulator. */
        if (test_emulated())
                test_skip("under qemu-user, posix_spawn() cannot report a missing program (vfork runs as "
                          "fork)");
        uboot_setup(c);
        b = backend(c);
        ASSERT_OK(setenv("PATH", "/nonexistent", 1));
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "uboot backend: fw_printenv: fw_printenv not found in PATH");
        boot_backend_free(b);
        b = NULL;
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "[boot] backend = uboot needs fw_printenv and fw_setenv (libubootenv-tool)");
        config_done(c);
}

TEST(grub_missing_tool)
{
        Config *c = config_new(BOOT_BACKEND_GRUB);
        BootBackend *b = NULL;
        UpkErr e = {};

        if (test_emulated()) /* see uboot_missing_tools */
                test_skip("under qemu-user, posix_spawn() cannot report a missing program (vfork runs as "
                          "fork)");
        grub_setup(c);
        b = backend(c);
        ASSERT_OK(setenv("PATH", "/nonexistent", 1));
        ASSERT_UPK_ERR(boot_mark_good(b, "B", &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "grub backend: grub-editenv: grub-editenv not found in PATH");
        boot_backend_free(b);
        b = NULL;
        ASSERT_UPK_ERR(boot_backend_new(c, slots_ab, 2, &b, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "[boot] backend = grub needs grub-editenv (grub-common)");
        config_done(c);
}

/* ---- uboot and grub specifics ---- */

TEST(uboot_one_write_keeps_other_variables)
{
        Config *c = config_new(BOOT_BACKEND_UBOOT);
        _cleanup_free_ char *cmd = NULL;
        BootBackend *b;
        UpkErr e = {};
        Map m;

        uboot_setup(c);
        b = backend(c);
        ASSERT_OK_E(boot_set_try(b, "B", &e), &e);
        cmd = strdup_printf("fw_printenv -c %s", c->boot_uboot_config);
        map_read(&m, cmd);
        ASSERT_STREQ(map_get(&m, "bootdelay"), "3");
        ASSERT_STREQ(map_get(&m, "BOOT_ORDER"), "B A");
        ASSERT_STREQ(map_get(&m, "BOOT_A_LEFT"), "3");
        ASSERT_STREQ(map_get(&m, "BOOT_B_LEFT"), "1");
        ASSERT_STREQ(map_get(&m, "BOOT_B_TRY"), "1");
        ASSERT_OK_E(boot_mark_good(b, "B", &e), &e);
        map_read(&m, cmd);
        ASSERT_STREQ(map_get(&m, "BOOT_B_LEFT"), "3");
        ASSERT_EQ(m.n, 4); /* BOOT_B_TRY is unset again */
        boot_backend_free(b);
        config_done(c);
}

TEST(uboot_bad_values_and_broken_env)
{
        Config *c = config_new(BOOT_BACKEND_UBOOT);
        _cleanup_free_ char *cmd = NULL, *p = NULL;
        BootBackend *b;
        UpkErr e = {};

        uboot_setup(c);
        b = backend(c);
        cmd = strdup_printf("fw_setenv -c %s BOOT_A_LEFT lots", c->boot_uboot_config);
        run_sh(cmd);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EBADMSG, UPK_ERR_CONFIG,
                       "U-Boot variable BOOT_A_LEFT: \"lots\" is not a number of attempts");
        free(cmd);
        cmd = strdup_printf("fw_setenv -c %s BOOT_A_LEFT 2 && fw_setenv -c %s BOOT_ORDER 'A X'",
                            c->boot_uboot_config, c->boot_uboot_config);
        run_sh(cmd);
        ASSERT_UPK_ERR(boot_mark_good(b, "A", &e), &e, -EBADMSG, UPK_ERR_CONFIG,
                       "U-Boot variable BOOT_ORDER: \"X\" is not one of the boot slots");
        /* a value with control characters is quoted without them */
        free(cmd);
        cmd = strdup_printf("fw_setenv -c %s BOOT_A_TRY \"$(printf '1\\033[2J\\033[31m')\" && "
                            "fw_setenv -c %s BOOT_ORDER 'A B'",
                            c->boot_uboot_config, c->boot_uboot_config);
        run_sh(cmd);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EBADMSG, UPK_ERR_CONFIG,
                       "BOOT_A_TRY: \"1 [2J [31m\" is neither 0 nor 1");
        assert_printable(e.msg);

        /* An environment with a bad CRC and no default one: fw_printenv's own words come through. */
        run_sh("dd if=/dev/zero of=uboot.env bs=1024 count=32 status=none");
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EIO, UPK_ERR_IO, "Cannot read environment");
        ASSERT_TRUE(strstr(e.msg, "fw_printenv -c ") && strstr(e.msg, "failed with status"));
        boot_backend_free(b);
        config_done(c);
}

TEST(grub_creates_grubenv_and_writes_all)
{
        Config *c = config_new(BOOT_BACKEND_GRUB);
        _cleanup_free_ char *cmd = NULL, *p = NULL, *data = NULL;
        size_t size;
        BootBackend *b;
        UpkErr e = {};
        Map m;

        grub_setup(c);
        b = backend(c);
        assert_primary(b, "A");
        ASSERT_TRUE(access("grubenv", F_OK) < 0);
        ASSERT_OK_E(boot_set_try(b, "B", &e), &e);
        ASSERT_OK(read_full_file("grubenv", 4096, &data, &size));
        ASSERT_EQ(size, 1024);
        ASSERT_TRUE(strneq(data, "# GRUB Environment Block\n", 25));
        cmd = strdup_printf("grub-editenv %s list", c->boot_grubenv);
        map_read(&m, cmd);
        ASSERT_EQ(m.n, 7);
        ASSERT_STREQ(map_get(&m, "ORDER"), "B A");
        ASSERT_STREQ(map_get(&m, "A_OK"), "1");
        ASSERT_STREQ(map_get(&m, "B_OK"), "1");
        ASSERT_STREQ(map_get(&m, "B_TRY"), "0");
        ASSERT_STREQ(map_get(&m, "B_PENDING"), "1");
        ASSERT_OK_E(boot_mark_bad(b, "B", &e), &e);
        map_read(&m, cmd);
        ASSERT_STREQ(map_get(&m, "ORDER"), "A B");
        ASSERT_STREQ(map_get(&m, "B_OK"), "0");
        ASSERT_STREQ(map_get(&m, "B_PENDING"), "0");
        assert_state(b, "B", SLOT_STATE_BAD);
        /* no temporary copies left behind */
        ASSERT_EQ(system("ls -A | grep -q upkeep-grubenv"), 256);

        free(cmd);
        cmd = strdup_printf("grub-editenv %s set A_OK=yes", c->boot_grubenv);
        run_sh(cmd);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EBADMSG, UPK_ERR_CONFIG,
                       "A_OK: \"yes\" is neither 0 nor 1");
        /* values with control characters are quoted without them */
        free(cmd);
        cmd = strdup_printf("grub-editenv %s set \"A_OK=$(printf '\\033[2J1')\"", c->boot_grubenv);
        run_sh(cmd);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EBADMSG, UPK_ERR_CONFIG,
                       "A_OK: \" [2J1\" is neither 0 nor 1");
        assert_printable(e.msg);
        free(cmd);
        cmd = strdup_printf("grub-editenv %s set A_OK=1 \"ORDER=A $(printf 'B\\033[31m')\"",
                            c->boot_grubenv);
        run_sh(cmd);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EBADMSG, UPK_ERR_CONFIG,
                       "ORDER: \"B [31m\" is not one of the boot slots");
        assert_printable(e.msg);
        test_write_file("grubenv", "garbage", 7);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EIO, UPK_ERR_IO, "invalid environment block");
        boot_backend_free(b);
        config_done(c);
}

/* The UEFI layout: /boot/grub/grubenv is a link into the ESP. The link stays and the ESP copy changes. */
TEST(grub_writes_through_symlinked_grubenv)
{
        Config *c = config_new(BOOT_BACKEND_GRUB);
        _cleanup_free_ char *cmd = NULL, *esp = NULL;
        BootBackend *b;
        UpkErr e = {};
        struct stat st;
        Map m;

        grub_setup(c);
        ASSERT_EQ(mkdir("esp", 0755), 0);
        esp = test_cwd_path("esp/grubenv");
        cmd = strdup_printf("grub-editenv %s create", esp);
        run_sh(cmd);
        ASSERT_EQ(symlink(esp, "grubenv"), 0);
        b = backend(c);
        ASSERT_OK_E(boot_set_try(b, "B", &e), &e);
        ASSERT_EQ(lstat("grubenv", &st), 0);
        ASSERT_TRUE(S_ISLNK(st.st_mode));
        free(cmd);
        cmd = strdup_printf("grub-editenv %s list", esp);
        map_read(&m, cmd);
        ASSERT_STREQ(map_get(&m, "ORDER"), "B A");
        ASSERT_STREQ(map_get(&m, "B_PENDING"), "1");
        assert_state(b, "B", SLOT_STATE_TRY);
        ASSERT_OK_E(boot_mark_good(b, "B", &e), &e);
        map_read(&m, cmd);
        ASSERT_STREQ(map_get(&m, "B_PENDING"), "0");
        ASSERT_EQ(lstat("grubenv", &st), 0);
        ASSERT_TRUE(S_ISLNK(st.st_mode));
        /* no temporary copies left behind, in either folder */
        ASSERT_EQ(system("ls -A . esp | grep -q upkeep-grubenv"), 256);

        /* A link to nowhere is refused, not replaced by a plain file. */
        ASSERT_EQ(unlink("grubenv"), 0);
        ASSERT_EQ(symlink("esp/missing/grubenv", "grubenv"), 0);
        ASSERT_UPK_ERR(boot_mark_good(b, "A", &e), &e, -ENOENT, UPK_ERR_IO,
                       "is a symbolic link that cannot be followed");
        ASSERT_EQ(lstat("grubenv", &st), 0);
        ASSERT_TRUE(S_ISLNK(st.st_mode));
        boot_backend_free(b);
        config_done(c);
}

/* A good slot booted without a confirmation (TRY=1) is still what grub boots next, not a pending try. */
TEST(grub_unconfirmed_good_slot_stays_primary)
{
        Config *c = config_new(BOOT_BACKEND_GRUB);
        BootBackend *b;
        UpkErr e = {};

        grub_setup(c);
        b = backend(c);
        ASSERT_OK_E(boot_mark_good(b, "A", &e), &e);
        assert_reboot(&rig_grub, c, "A");
        assert_primary(b, "A");
        assert_reboot(&rig_grub, c, "A");
        assert_state(b, "A", SLOT_STATE_GOOD);
        boot_backend_free(b);
        config_done(c);
}

/* ---- script specifics ---- */

static BootBackend *script_backend(Config *c, const char *body)
{
        _cleanup_free_ char *text = strdup_printf("#!/bin/sh\n%s", body);

        test_write_file("boot.sh", text, strlen(text));
        ASSERT_OK(chmod("boot.sh", 0755));
        c->boot_backend = BOOT_BACKEND_SCRIPT;
        free(c->boot_script);
        c->boot_script = test_cwd_path("boot.sh");
        return backend(c);
}

TEST(script_failures)
{
        Config *c = config_new(BOOT_BACKEND_SCRIPT);
        _cleanup_free_ char *p = NULL;
        SlotState s;
        BootBackend *b;
        UpkErr e = {};

        b = script_backend(c, "echo 'boom: cannot reach the bootloader' >&2\nexit 1\n");
        ASSERT_UPK_ERR(boot_mark_good(b, "A", &e), &e, -EIO, UPK_ERR_IO,
                       "boot.sh set-state A good: exited with status 1: boom: cannot reach the bootloader");
        boot_backend_free(b);

        b = script_backend(c, "echo maybe\n");
        ASSERT_UPK_ERR(boot_get_state(b, "A", &s, &e), &e, -EBADMSG, UPK_ERR_IO,
                       "get-state A: printed \"maybe\", not good, bad or try");
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EBADMSG, UPK_ERR_IO,
                       "get-primary: printed \"maybe\", not one of the slots");
        boot_backend_free(b);

        /* what it printed is quoted without its control characters */
        b = script_backend(c, "printf 'go\\033[2J\\033]0;owned\\007od\\r\\n'\n");
        ASSERT_UPK_ERR(boot_get_state(b, "A", &s, &e), &e, -EBADMSG, UPK_ERR_IO,
                       "get-state A: printed \"go [2J ]0;owned od\", not good, bad or try");
        assert_printable(e.msg);
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EBADMSG, UPK_ERR_IO,
                       "get-primary: printed \"go [2J ]0;owned od\", not one of the slots");
        assert_printable(e.msg);
        boot_backend_free(b);

        b = script_backend(c, "exit 3\n");
        ASSERT_UPK_ERR(boot_get_current(b, &p, &e), &e, -ENODATA, UPK_ERR_IO,
                       "the booted slot is not known");
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EIO, UPK_ERR_IO, "exited with status 3");
        boot_backend_free(b);

        b = script_backend(c, "kill -TERM $$\n");
        ASSERT_UPK_ERR(boot_mark_bad(b, "B", &e), &e, -EIO, UPK_ERR_IO,
                       "set-state B bad: killed by signal 15");
        boot_backend_free(b);

        b = script_backend(c, "head -c 5000 /dev/zero | tr '\\0' x\n");
        ASSERT_UPK_ERR(boot_get_primary(b, &p, &e), &e, -EFBIG, UPK_ERR_IO, "printed more than 4096 bytes");
        boot_backend_free(b);

        /* the arguments and the environment it gets */
        b = script_backend(c, "[ \"$1 $2 $3\" = 'get-state B ' ] || exit 9\n"
                              "[ \"$UPKEEP_BOOT_SLOTS/$UPKEEP_BOOT_ATTEMPTS\" = 'A B/3' ] || exit 8\n"
                              "[ -z \"${UPKEEP_BOOT_STATE_FILE+x}\" ] || exit 7\n"
                              "[ -z \"${https_proxy+x}${UPKEEP_SECRET+x}\" ] || exit 6\n"
                              "[ \"$PATH\" = /usr/sbin:/usr/bin:/sbin:/bin ] || exit 5\n"
                              "printf '  try \\nignored\\n'\n");
        ASSERT_OK(setenv("UPKEEP_BOOT_STATE_FILE", "/stale", 1));
        /* nothing of the daemon's own environment reaches it */
        ASSERT_OK(setenv("https_proxy", "http://user:secret@127.0.0.1:3128", 1));
        ASSERT_OK(setenv("UPKEEP_SECRET", "x", 1));
        ASSERT_OK_E(boot_get_state(b, "B", &s, &e), &e);
        ASSERT_EQ(s, SLOT_STATE_TRY);
        boot_backend_free(b);
        config_done(c);
}

TEST(script_timeout_kills_the_group)
{
        Config *c = config_new(BOOT_BACKEND_SCRIPT);
        _cleanup_free_ char *pid_text = NULL, *proc = NULL, *stat = NULL;
        struct timespec t0, t1;
        uint64_t pid;
        BootBackend *b;
        UpkErr e = {};

        ASSERT_OK(setenv("UPKEEP_TEST_BOOT_TIMEOUT_MS", "300", 1));
        /* the child keeps stdout open: only killing the whole group ends it */
        b = script_backend(c, "sleep 30 &\necho $! > sleep.pid\nwait\n");
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ASSERT_UPK_ERR(boot_set_try(b, "B", &e), &e, -ETIME, UPK_ERR_IO,
                       "set-primary B: did not finish within 300 ms; killed");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ASSERT_TRUE(t1.tv_sec - t0.tv_sec < 5);

        ASSERT_OK(read_full_file("sleep.pid", 64, &pid_text, NULL));
        pid_text[strcspn(pid_text, "\n")] = 0;
        ASSERT_OK(safe_atou64(pid_text, &pid));
        proc = strdup_printf("/proc/%" PRIu64 "/stat", pid);
        for (int i = 0; i < 100; i++) { /* gone, or a zombie waiting for its reaper */
                free(stat);
                stat = NULL;
                if (read_full_file(proc, 4096, &stat, NULL) < 0 || strstr(stat, ") Z "))
                        break;
                usleep(10000);
        }
        ASSERT_TRUE(!stat || strstr(stat, ") Z "));
        boot_backend_free(b);
        config_done(c);
}
