/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The installer without root: a device in the case's temporary folder (slot A and B as files, the
 * file boot backend played by boot_file_simulate_boot(), a health folder), and the whole cycle on it:
 * which slot is booted, the running version, install, the reboot, confirmation with health checks,
 * fallback, mark-good, rollback; and what is refused with nothing changed. */
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "boot-rig.h"
#include "bundle-test-util.h"
#include "install.h"
#include "install-internal.h"
#include "fileio.h"

#define PAYLOAD_SIZE 200000u

static char *read_str(const char *path)
{
        size_t size;

        return file_contents(path, &size);
}

static void write_executable(const char *path, const char *text)
{
        test_write_str(path, text);
        ASSERT_OK(chmod(path, 0755));
}

/* upkeep.conf for a device in the current folder: `boot` is its [boot] section (NULL: the file backend on
 * ./bootenv, and `boot_extra`), `slot_extra` goes into both slot sections. */
static Config *device_config_boot(const char *name, const char *boot, const char *boot_extra,
                                  const char *slot_extra)
{
        _cleanup_free_ char *root = test_cwd_path(""), *text = NULL, *file_boot = NULL;
        Config *c = NULL;
        UpkErr e = {};

        if (!boot) {
                file_boot = strdup_printf("backend = file\nstate-file = %sbootenv\n", root);
                ASSERT_TRUE(file_boot);
                boot = file_boot;
        }
        text = strdup_printf("[device]\n"
                             "compatible = acme-gw\n"
                             "version-file = %sos-release\n"
                             "data-dir = %sdata\n"
                             "[keyring]\n"
                             "path = %s\n"
                             "[boot]\n"
                             "%s"
                             "%s"
                             "[slot.rootfs.A]\n"
                             "device = %sslotA.img\n"
                             "%s"
                             "[slot.rootfs.B]\n"
                             "device = %sslotB.img\n"
                             "%s"
                             "[health]\n"
                             "dir = %shealth.d\n"
                             "timeout = 30s\n"
                             "[install]\n"
                             "handlers-dir = %shandlers\n"
                             "[policy]\n"
                             "reboot = manual\n",
                             root, root, test_pki("keyring.pem"), boot, boot_extra ?: "", root,
                             slot_extra ?: "", root, slot_extra ?: "", root, root);
        ASSERT_TRUE(text);
        test_write_str(name, text);
        ASSERT_OK_E(config_load(name, &c, &e), &e);
        return c;
}

static Config *device_config(const char *name, const char *boot_extra, const char *slot_extra)
{
        return device_config_boot(name, NULL, boot_extra, slot_extra);
}

/* The boot simulation: the slot the bootloader picks now. */
static char *reboot(void)
{
        char *booted = NULL;
        UpkErr e = {};

        ASSERT_OK_E(boot_file_simulate_boot("bootenv", &booted, &e), &e);
        return booted;
}

/* A device as from the factory: slot A holds the running 1.0.0 and has been booted once; B is empty.
 * The kernel command line names no slot. */
static void device_files(void)
{
        _cleanup_free_ char *cmdline = test_cwd_path("cmdline");

        test_write_str("slotA.img", "old system\n");
        test_write_str("slotB.img", "");
        test_write_str("os-release", "NAME=\"Acme\"\nVERSION_ID=\"1.0.0\"\n");
        test_write_str("cmdline", "root=/dev/mmcblk0p2 quiet\n");
        ASSERT_OK(setenv("UPKEEP_TEST_PROC_CMDLINE", cmdline, 1));
        ASSERT_OK(mkdir("health.d", 0755));
        ASSERT_OK(mkdir("handlers", 0755));
}

static Config *device_new(void)
{
        _cleanup_free_ char *booted = NULL;

        device_files();
        booted = reboot();
        ASSERT_STREQ(booted, "A");
        return device_config("upkeep.conf", NULL, NULL);
}

/* The rig's bootloader boots `want`, and the kernel command line says so (grub does not record it). */
static void boot_to(const Rig *rig, const Config *c, const char *want)
{
        _cleanup_free_ char *booted = rig->reboot(c), *cmdline = NULL;

        ASSERT_STREQ(booted, want);
        cmdline = strdup_printf("root=/dev/mmcblk0p2 upkeep.slot=%s quiet\n", want);
        ASSERT_TRUE(cmdline);
        test_write_str("cmdline", cmdline);
}

/* device_new() on the boot backend of `rig`. */
static Config *device_on(const Rig *rig)
{
        _cleanup_free_ char *boot = NULL;
        Config *c;

        device_files();
        boot = rig_boot_lines(rig);
        c = device_config_boot("upkeep.conf", boot, NULL, NULL);
        boot_to(rig, c, "A");
        return c;
}

static uint8_t *payload_new(unsigned seed)
{
        return random_bytes(PAYLOAD_SIZE, seed);
}

/* A signed bundle NAME.upk with one raw payload for the rootfs class. */
static void bundle_new(const char *name, const char *compatible, const char *version, const uint8_t *payload,
                       size_t size)
{
        _cleanup_free_ char *manifest = NULL, *out = strdup_printf("%s.upk", name);

        manifest = strdup_printf(
                "{ \"format\": 1, \"compatible\": \"%s\", \"version\": \"%s\",\n"
                "  \"build\": \"2026-11-25T10:00:00Z\", \"support\": { \"end\": \"2031-12-31\" },\n"
                "  \"payloads\": [ { \"name\": \"rootfs\", \"file\": \"rootfs.img\", "
                "\"handler\": \"raw\", \"slot_class\": \"rootfs\" } ] }\n",
                compatible, version);
        ASSERT_TRUE(manifest && out);
        test_write_file("rootfs.img", payload, size);
        test_write_str("manifest.json", manifest);
        create_bundle("manifest.json", out);
}

static UpkState *state(void)
{
        _cleanup_free_ char *dir = test_cwd_path("data"), *warning = NULL;
        UpkState *s = NULL;

        ASSERT_OK(state_load(dir, &s, &warning));
        ASSERT_TRUE(!warning);
        return s;
}

static SlotState slot_state(const Config *c, const char *slot)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        SlotState st;
        UpkErr e = {};

        ASSERT_OK_E(install_open_boot(c, &boot, &e), &e);
        ASSERT_OK_E(boot_get_state(boot, slot, &st, &e), &e);
        return st;
}

static char *primary(const Config *c)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        char *p = NULL;
        UpkErr e = {};

        ASSERT_OK_E(install_open_boot(c, &boot, &e), &e);
        ASSERT_OK_E(boot_get_primary(boot, &p, &e), &e);
        return p;
}

static void assert_slot_holds(const char *path, const void *data, size_t size)
{
        size_t got_size;
        _cleanup_free_ char *got = file_contents(path, &got_size);

        ASSERT_EQ(got_size, size);
        ASSERT_TRUE(memcmp(got, data, size) == 0);
}

/* The last history entry: operation, ok, and (when given) a part of its reason. */
static void assert_last_history(const char *op, bool ok, const char *reason)
{
        _cleanup_free_ char *dir = test_cwd_path("data"), *warning = NULL;
        HistoryEntry *h = NULL;
        size_t n = 0;

        ASSERT_OK(history_load(dir, &h, &n, &warning));
        ASSERT_TRUE(n > 0);
        ASSERT_STREQ(h[n - 1].operation, op);
        ASSERT_EQ(h[n - 1].ok, ok);
        if (reason)
                ASSERT_TRUE(h[n - 1].reason && strstr(h[n - 1].reason, reason));
        history_free(h, n);
}

static void install_ok(const Config *c, const char *bundle, const char *version)
{
        InstallResult res = {};
        UpkErr e = {};

        ASSERT_OK_E(install_bundle_path(c, bundle, NULL, &res, &e), &e);
        ASSERT_STREQ(res.version, version);
        ASSERT_STREQ(res.slot, "B");
        ASSERT_FALSE(res.reboot);
        install_result_done(&res);
}

static void confirm(const Config *c, ConfirmOutcome want, ConfirmResult *ret)
{
        UpkErr e = {};

        ASSERT_OK_E(install_confirm(c, ret, &e), &e);
        if (ret->outcome != want)
                test_fail("confirm: outcome %d, expected %d (ConfirmOutcome; reason: %s)", (int)ret->outcome,
                          (int)want, ret->reason ?: "");
}

/* ---- parsers ---- */

TEST(cmdline_slot)
{
        static const struct {
                const char *cmdline, *slot;
        } cases[] = {
                { "upkeep.slot=B", "B" },
                { "root=/dev/sda2 upkeep.slot=A quiet\n", "A" },
                { "quiet\tupkeep.slot=slot_2\n", "slot_2" },
                { "root=/dev/sda2 quiet\n", NULL },
                { "upkeep.slot= quiet", NULL }, /* empty: not given */
                { "xupkeep.slot=B", NULL },     /* another parameter */
                { "upkeep.slotx=B", NULL },
                { "", NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = strdup(cases[i].cmdline), *slot = NULL;
                int r = install_parse_cmdline_slot(text, &slot);

                if (cases[i].slot) {
                        ASSERT_EQ(r, 1);
                        ASSERT_STREQ(slot, cases[i].slot);
                } else
                        ASSERT_EQ(r, 0);
        }
}

/* The slots a delta took blocks from: each once, by class and name, in the order added; a list too long
 * for the field ends with ", ..." and still counts every slot. */
TEST(delta_stats_slots)
{
        SlotConfig root_a = { .class = (char *)"rootfs", .name = (char *)"A", .bootname = (char *)"A" },
                   app_b = { .class = (char *)"appfs", .name = (char *)"B", .bootname = (char *)"A" },
                   app_a = { .class = (char *)"appfs", .name = (char *)"A", .bootname = (char *)"B" };
        char classes[40][66];
        InstallDeltaStats st = {};
        size_t len;

        install_delta_stats_add_slot(&st, &root_a);
        ASSERT_STREQ(st.slots, "rootfs.A");
        ASSERT_EQ(st.n_slots, 1);
        install_delta_stats_add_slot(&st, &app_b);
        install_delta_stats_add_slot(&st, &root_a);
        install_delta_stats_add_slot(&st, &app_b);
        ASSERT_STREQ(st.slots, "rootfs.A, appfs.B");
        ASSERT_EQ(st.n_slots, 2);
        install_delta_stats_add_slot(&st, &app_a);
        ASSERT_STREQ(st.slots, "rootfs.A, appfs.B, appfs.A");
        ASSERT_EQ(st.n_slots, 3);

        st = (InstallDeltaStats){};
        for (size_t i = 0; i < ELEMENTSOF(classes); i++) {
                SlotConfig s = { .class = classes[i], .name = (char *)"A" };

                memset(classes[i], 'a' + (char)(i % 26), 64);
                classes[i][64] = (char)('0' + i / 26);
                classes[i][65] = 0;
                install_delta_stats_add_slot(&st, &s);
        }
        ASSERT_EQ(st.n_slots, ELEMENTSOF(classes));
        len = strlen(st.slots);
        ASSERT_TRUE(len < sizeof(st.slots));
        ASSERT_STREQ(st.slots + len - 5, ", ...");
        ASSERT_TRUE(strneq(st.slots, classes[0], 65));
        ASSERT_TRUE(strneq(st.slots + 65, ".A, ", 4));
}

TEST(version_file)
{
        static const struct {
                const char *text, *version;
        } cases[] = {
                { "NAME=\"Acme\"\nVERSION_ID=\"1.2.3\"\n", "1.2.3" },
                { "VERSION_ID='2.0.0-rc.1'\nNAME=x\n", "2.0.0-rc.1" },
                { "ID=acme\nVERSION_ID=1.0.0  \r\n", "1.0.0" },
                { "3.4.5\n", "3.4.5" },
                { "3.4.5", "3.4.5" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = strdup(cases[i].text), *v = NULL;
                UpkErr e = {};

                ASSERT_OK_E(install_parse_version_file(text, "/etc/os-release", &v, &e), &e);
                ASSERT_STREQ(v, cases[i].version);
        }
}

TEST(version_file_refused)
{
        _cleanup_free_ char *none = strdup("NAME=Acme\nID=acme\n"), *bad = strdup("VERSION_ID=\"1.2\"\n");
        char *v = NULL;
        UpkErr e = {};

        ASSERT_UPK_ERR(install_parse_version_file(none, "/etc/os-release", &v, &e), &e, -EINVAL,
                       UPK_ERR_CONFIG, "version file /etc/os-release: no VERSION_ID= line");
        ASSERT_UPK_ERR(install_parse_version_file(bad, "/etc/os-release", &v, &e), &e, -EINVAL,
                       UPK_ERR_CONFIG, "\"1.2\" is not a semantic version");
        ASSERT_TRUE(v == NULL);
}

/* ---- slots and versions ---- */

TEST(no_slots_configured)
{
        _cleanup_(config_freep) Config *c = NULL;
        BootBackend *boot = NULL;
        UpkErr e = {};

        test_write_str("upkeep.conf", "[device]\ncompatible = acme-gw\n");
        ASSERT_OK_E(config_load("upkeep.conf", &c, &e), &e);
        ASSERT_UPK_ERR(install_open_boot(c, &boot, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "no [slot.CLASS.A|B] sections are configured");
        ASSERT_TRUE(boot == NULL);
}

TEST(booted_slot_from_config_cmdline_or_backend)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_(config_freep) Config *fixed = device_config("fixed.conf", "booted = B\n", NULL);
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *cmd = NULL;
        UpkErr e = {};

        ASSERT_OK_E(install_open_boot(c, &boot, &e), &e);
        /* the backend: the simulated bootloader recorded A */
        ASSERT_OK_E(install_find_booted(c, boot, &a, &e), &e);
        ASSERT_STREQ(a, "A");
        /* [boot] booted= wins over the backend */
        ASSERT_OK_E(install_find_booted(fixed, boot, &b, &e), &e);
        ASSERT_STREQ(b, "B");
        /* upkeep.slot= on the command line wins over the backend */
        test_write_str("cmdline", "quiet upkeep.slot=B\n");
        ASSERT_OK_E(install_find_booted(c, boot, &cmd, &e), &e);
        ASSERT_STREQ(cmd, "B");
}

TEST(booted_slot_unknown_or_unconfigured)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        char *s = NULL;
        UpkErr e = {};

        ASSERT_OK_E(install_open_boot(c, &boot, &e), &e);
        test_write_str("cmdline", "upkeep.slot=C\n");
        ASSERT_UPK_ERR(install_find_booted(c, boot, &s, &e), &e, -EINVAL, UPK_ERR_CONFIG,
                       "upkeep.slot= on the kernel command line names slot \"C\", which is not a configured "
                       "bootname");
        /* no command line slot, and a boot environment that never recorded a boot */
        test_write_str("cmdline", "quiet\n");
        test_write_str("bootenv", "BOOT_ORDER=\"A B\"\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n");
        ASSERT_UPK_ERR(install_find_booted(c, boot, &s, &e), &e, -ENODATA, UPK_ERR_CONFIG,
                       "cannot tell which slot is booted");
        ASSERT_TRUE(s == NULL);
}

TEST(current_version_from_state_or_version_file)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_(state_freep) UpkState *s = state();
        _cleanup_free_ char *from_file = NULL, *from_state = NULL;
        char *v = NULL;
        UpkErr e = {};

        ASSERT_OK_E(install_current_version(c, s, "A", &from_file, &e), &e);
        ASSERT_STREQ(from_file, "1.0.0");
        ASSERT_OK(state_set_slot_version(s, "A", "1.0.5"));
        ASSERT_OK_E(install_current_version(c, s, "A", &from_state, &e), &e);
        ASSERT_STREQ(from_state, "1.0.5");
        ASSERT_OK(unlink("os-release"));
        ASSERT_UPK_ERR(install_current_version(c, s, "B", &v, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "os-release: cannot read");
}

/* ---- the cycle ---- */

typedef struct Phases {
        InstallPhase seen[64];
        size_t n;
        uint64_t last_done, total;
} Phases;

static void on_progress(void *userdata, InstallPhase phase, uint64_t done, uint64_t total)
{
        Phases *p = userdata;

        if (p->n == 0 || p->seen[p->n - 1] != phase) {
                ASSERT_TRUE(p->n < ELEMENTSOF(p->seen));
                p->seen[p->n++] = phase;
        }
        p->last_done = done;
        p->total = total;
}

TEST(install_confirm_good)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ uint8_t *payload = payload_new(1);
        _cleanup_free_ char *booted = NULL, *p = NULL, *env = NULL;
        _cleanup_(state_freep) UpkState *s = NULL, *after = NULL;
        _cleanup_free_ char *check = NULL;
        static const InstallPhase want[] = {
                INSTALL_PHASE_VERIFYING, INSTALL_PHASE_CHECKING,   INSTALL_PHASE_PREPARING,
                INSTALL_PHASE_WRITING,   INSTALL_PHASE_ACTIVATING, INSTALL_PHASE_DONE,
        };
        Phases phases = {};
        InstallOptions o = { .progress = on_progress, .userdata = &phases };
        InstallResult res = {};
        ConfirmResult cr = {};
        UpkErr e = {};

        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        ASSERT_OK_E(install_bundle_path(c, "b.upk", &o, &res, &e), &e);
        ASSERT_STREQ(res.version, "1.1.0");
        ASSERT_STREQ(res.slot, "B");
        install_result_done(&res);
        ASSERT_EQ(phases.n, ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                ASSERT_STREQ(install_phase_to_string(phases.seen[i]), install_phase_to_string(want[i]));
        ASSERT_EQ(phases.last_done, PAYLOAD_SIZE);
        ASSERT_EQ(phases.total, PAYLOAD_SIZE);

        assert_slot_holds("slotB.img", payload, PAYLOAD_SIZE);
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_TRY);
        p = primary(c);
        ASSERT_STREQ(p, "B");
        s = state();
        ASSERT_TRUE(s->pending);
        ASSERT_STREQ(s->pending_version, "1.1.0");
        ASSERT_STREQ(s->pending_slot, "B");
        ASSERT_STREQ(s->pending_from_slot, "A");
        ASSERT_STREQ(state_slot_version(s, "B"), "1.1.0");
        ASSERT_STREQ(s->support_end, "2031-12-31");
        assert_last_history("install", true, NULL);

        /* the reboot into B, and a health check that sees the version and the slot */
        check = test_cwd_path("check.env");
        env = strdup_printf("#!/bin/sh\necho \"$UPKEEP_VERSION $UPKEEP_SLOT\" > %s\n", check);
        write_executable("health.d/10-env", env);
        booted = reboot();
        ASSERT_STREQ(booted, "B");
        confirm(c, CONFIRM_GOOD, &cr);
        ASSERT_STREQ(cr.version, "1.1.0");
        ASSERT_STREQ(cr.slot, "B");
        confirm_result_done(&cr);
        free(p);
        p = read_str("check.env");
        ASSERT_STREQ(p, "1.1.0 B\n");

        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_GOOD);
        free(p);
        p = primary(c);
        ASSERT_STREQ(p, "B");
        after = state();
        ASSERT_FALSE(after->pending);
        ASSERT_STREQ(after->version_floor, "1.1.0");
        assert_last_history("confirm", true, NULL);

        /* the next start has nothing to confirm */
        confirm(c, CONFIRM_NOTHING_PENDING, &cr);
        confirm_result_done(&cr);
}

TEST(failed_health_check_marks_the_slot_bad)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ uint8_t *payload = payload_new(2);
        _cleanup_free_ char *booted = NULL, *again = NULL, *p = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        ConfirmResult cr = {};

        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        install_ok(c, "b.upk", "1.1.0");
        write_executable("health.d/10-ok", "#!/bin/sh\nexit 0\n");
        write_executable("health.d/20-fail", "#!/bin/sh\necho 'data partition missing' >&2\nexit 3\n");
        test_write_str("health.d/30-not-executable", "#!/bin/sh\nexit 1\n");
        booted = reboot();
        ASSERT_STREQ(booted, "B");
        confirm(c, CONFIRM_FAILED, &cr);
        ASSERT_STREQ(cr.slot, "B");
        ASSERT_TRUE(strstr(cr.reason, "health.d/20-fail exited with status 3: data partition missing"));
        ASSERT_FALSE(cr.reboot); /* reboot = manual */
        confirm_result_done(&cr);

        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
        p = primary(c);
        ASSERT_STREQ(p, "A");
        s = state();
        ASSERT_FALSE(s->pending);
        ASSERT_TRUE(s->version_floor == NULL);
        ASSERT_TRUE(s->rollback.set);
        ASSERT_STREQ(s->rollback.version, "1.1.0");
        ASSERT_STREQ(s->rollback.slot, "B");
        ASSERT_TRUE(strstr(s->rollback.reason, "20-fail exited with status 3: data partition missing"));
        assert_last_history("confirm", false, "exited with status 3");
        again = reboot();
        ASSERT_STREQ(again, "A");
        confirm(c, CONFIRM_NOTHING_PENDING, &cr);
        confirm_result_done(&cr);
}

TEST(health_check_others_may_change_is_not_run)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ uint8_t *payload = payload_new(2);
        _cleanup_free_ char *booted = NULL;
        ConfirmResult cr = {};

        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        install_ok(c, "b.upk", "1.1.0");
        write_executable("health.d/10-ok", "#!/bin/sh\ntouch ran\nexit 0\n");
        ASSERT_OK(chmod("health.d/10-ok", 0777));
        booted = reboot();
        ASSERT_STREQ(booted, "B");
        confirm(c, CONFIRM_FAILED, &cr);
        ASSERT_TRUE(strstr(cr.reason, "health.d/10-ok not run: "));
        ASSERT_TRUE(strstr(cr.reason, "10-ok is writable by others (mode 0777): run chmod o-w "));
        ASSERT_TRUE(access("ran", F_OK) < 0);
        confirm_result_done(&cr);
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
}

TEST(unconfirmed_try_falls_back)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ uint8_t *payload = payload_new(3);
        _cleanup_free_ char *first = NULL, *second = NULL;
        ConfirmResult cr = {};

        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        install_ok(c, "b.upk", "1.1.0");
        /* B's one try is spent without a confirmation (it hung, or died first) */
        first = reboot();
        ASSERT_STREQ(first, "B");
        second = reboot();
        ASSERT_STREQ(second, "A");
        confirm(c, CONFIRM_FELL_BACK, &cr);
        ASSERT_STREQ(cr.version, "1.1.0");
        ASSERT_STREQ(cr.slot, "B");
        ASSERT_STREQ(cr.reason,
                     "version 1.1.0 on slot B was not confirmed: the system came back up on slot A");
        confirm_result_done(&cr);
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
        assert_last_history("confirm", false, "was not confirmed");
        s = state();
        ASSERT_TRUE(s->rollback.set && !s->rollback.acknowledged);
        ASSERT_STREQ(s->rollback.version, "1.1.0");
        ASSERT_STREQ(s->rollback.slot, "B");
        ASSERT_STREQ(s->rollback.reason,
                     "version 1.1.0 on slot B was not confirmed: the system came back up on slot A");
        ASSERT_TRUE(s->rollback.time > 0);
}

/* The boot environment forgets that B was rolled back (a single-copy U-Boot environment torn by a power
 * cut reads as none, and the boot script gives both slots their attempts; here B first): the bootloader
 * starts B, which still holds the rolled-back 1.1.0. Its start is not confirmed: B is marked bad, A good,
 * and the daemon is told to reboot. Once B holds another version, the rule no longer applies. */
TEST(a_rolled_back_slot_started_as_good_is_refused)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ uint8_t *payload = payload_new(3), *payload2 = payload_new(4);
        _cleanup_free_ char *b1 = NULL, *a1 = NULL, *b2 = NULL, *a2 = NULL, *p = NULL, *a3 = NULL;
        ConfirmResult cr = {};

        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        install_ok(c, "b.upk", "1.1.0");
        b1 = reboot();
        a1 = reboot();
        ASSERT_STREQ(a1, "A");
        confirm(c, CONFIRM_FELL_BACK, &cr);
        confirm_result_done(&cr);

        test_write_str("bootenv", "BOOT_ORDER=B A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOTED=A\n");
        b2 = reboot();
        ASSERT_STREQ(b2, "B");
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_GOOD);
        confirm(c, CONFIRM_FAILED, &cr);
        ASSERT_STREQ(cr.version, "1.1.0");
        ASSERT_STREQ(cr.slot, "B");
        ASSERT_TRUE(strstr(cr.reason,
                           "slot B still holds version 1.1.0, which was rolled back here (version "
                           "1.1.0 on slot B was not confirmed"));
        ASSERT_TRUE(strstr(cr.reason, "its boot environment was lost or reset; back to slot A"));
        ASSERT_TRUE(cr.reboot == (c->reboot == REBOOT_AUTO)); /* as after a failed health check */
        confirm_result_done(&cr);
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
        p = primary(c);
        ASSERT_STREQ(p, "A");
        assert_last_history("confirm", false, "was lost or reset");
        a2 = reboot();
        ASSERT_STREQ(a2, "A");
        confirm(c, CONFIRM_NOTHING_PENDING, &cr);
        confirm_result_done(&cr);

        /* 1.2.0 goes into B and is confirmed; a lost environment then starts a slot that holds no
         * rolled-back version: nothing to refuse. */
        bundle_new("c", "acme-gw", "1.2.0", payload2, PAYLOAD_SIZE);
        install_ok(c, "c.upk", "1.2.0");
        free(reboot());
        confirm(c, CONFIRM_GOOD, &cr);
        confirm_result_done(&cr);
        test_write_str("bootenv", "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOTED=B\n");
        a3 = reboot();
        ASSERT_STREQ(a3, "A");
        confirm(c, CONFIRM_NOTHING_PENDING, &cr);
        confirm_result_done(&cr);
}

/* The boot environment once the device runs A again with B bad: A first and confirmed with its
 * attempts, no try marker left on either slot. */
static void assert_back_on_a(const Rig *rig, const Config *c)
{
        Map m;

        rig->read_env(c, &m);
        if (streq(rig->name, "grub")) {
                ASSERT_STREQ(map_get(&m, "ORDER"), "A B");
                ASSERT_STREQ(map_get(&m, "A_OK"), "1");
                ASSERT_STREQ(map_get(&m, "A_TRY"), "0");
                ASSERT_STREQ(map_get(&m, "A_PENDING"), "0");
                ASSERT_STREQ(map_get(&m, "B_OK"), "0");
                ASSERT_STREQ(map_get(&m, "B_TRY"), "0");
                ASSERT_STREQ(map_get(&m, "B_PENDING"), "0");
        } else {
                ASSERT_STREQ(map_get(&m, "BOOT_ORDER"), "A B");
                ASSERT_STREQ(map_get(&m, "BOOT_A_LEFT"), "3");
                ASSERT_STREQ(map_get(&m, "BOOT_A_TRY"), "");
                ASSERT_STREQ(map_get(&m, "BOOT_B_LEFT"), "0");
                ASSERT_STREQ(map_get(&m, "BOOT_B_TRY"), "");
        }
}

/* The try marker of a bootloader fallback, on every backend: B's one try is spent, the bootloader comes
 * back to A (grub marks A_TRY=1 on its way, U-Boot and the file backend take one of A's attempts); the
 * confirmation at A's start marks B bad and confirms A, in one write each: A carries no marker and has
 * its full attempts, B stays bad. */
static void fallback_cleans_up(const Rig *rig)
{
        _cleanup_(config_freep) Config *c = device_on(rig);
        _cleanup_free_ uint8_t *payload = payload_new(3);
        _cleanup_free_ char *p = NULL;
        ConfirmResult cr = {};
        Map m;

        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        install_ok(c, "b.upk", "1.1.0");
        boot_to(rig, c, "B");
        boot_to(rig, c, "A");
        rig->read_env(c, &m);
        if (streq(rig->name, "grub"))
                ASSERT_STREQ(map_get(&m, "A_TRY"), "1"); /* what grub leaves while falling back */
        else
                ASSERT_STREQ(map_get(&m, "BOOT_A_LEFT"), "1"); /* one for the first boot, one now */

        confirm(c, CONFIRM_FELL_BACK, &cr);
        ASSERT_STREQ(cr.slot, "B");
        confirm_result_done(&cr);
        ASSERT_EQ(slot_state(c, "A"), SLOT_STATE_GOOD);
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
        p = primary(c);
        ASSERT_STREQ(p, "A");
        assert_back_on_a(rig, c);
        assert_last_history("confirm", false, "was not confirmed");

        /* A keeps booting, each start confirmed like any other */
        for (int i = 0; i < 2; i++) {
                boot_to(rig, c, "A");
                confirm(c, CONFIRM_NOTHING_PENDING, &cr);
                confirm_result_done(&cr);
        }
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
}

TEST(fallback_cleans_up_file)
{
        fallback_cleans_up(&rig_file);
}

TEST(fallback_cleans_up_uboot)
{
        fallback_cleans_up(&rig_uboot);
}

TEST(fallback_cleans_up_grub)
{
        fallback_cleans_up(&rig_grub);
}

TEST(fallback_cleans_up_script)
{
        fallback_cleans_up(&rig_script);
}

/* The try marker after a health check's rollback, on every backend: A is confirmed, 1.1.0 goes into B,
 * B's health check fails on its try (B marked bad), the bootloader boots A again (grub marks A_TRY=1 on
 * its way, U-Boot and the file backend take one of A's attempts); A's next start, with nothing pending,
 * confirms it: no marker left, its full attempts back, B still bad. */
static void health_rollback_cleans_up(const Rig *rig)
{
        _cleanup_(config_freep) Config *c = device_on(rig);
        _cleanup_free_ uint8_t *payload = payload_new(5);
        _cleanup_free_ char *p = NULL;
        ConfirmResult cr = {};
        Map m;

        confirm(c, CONFIRM_NOTHING_PENDING, &cr);
        confirm_result_done(&cr);
        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        install_ok(c, "b.upk", "1.1.0");
        boot_to(rig, c, "B");
        write_executable("health.d/20-fail", "#!/bin/sh\nexit 1\n");
        confirm(c, CONFIRM_FAILED, &cr);
        ASSERT_STREQ(cr.slot, "B");
        confirm_result_done(&cr);
        ASSERT_OK(unlink("health.d/20-fail"));
        boot_to(rig, c, "A");
        rig->read_env(c, &m);
        if (streq(rig->name, "grub"))
                ASSERT_STREQ(map_get(&m, "A_TRY"), "1"); /* what grub sets on every boot of A */

        confirm(c, CONFIRM_NOTHING_PENDING, &cr);
        confirm_result_done(&cr);
        ASSERT_EQ(slot_state(c, "A"), SLOT_STATE_GOOD);
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
        p = primary(c);
        ASSERT_STREQ(p, "A");
        assert_back_on_a(rig, c);
        /* and the next boot is a plain one of A */
        boot_to(rig, c, "A");
        confirm(c, CONFIRM_NOTHING_PENDING, &cr);
        confirm_result_done(&cr);
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
}

TEST(health_rollback_cleans_up_file)
{
        health_rollback_cleans_up(&rig_file);
}

TEST(health_rollback_cleans_up_uboot)
{
        health_rollback_cleans_up(&rig_uboot);
}

TEST(health_rollback_cleans_up_grub)
{
        health_rollback_cleans_up(&rig_grub);
}

TEST(health_rollback_cleans_up_script)
{
        health_rollback_cleans_up(&rig_script);
}

TEST(mark_good_then_rollback)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ uint8_t *payload = payload_new(4);
        _cleanup_free_ char *booted = NULL, *slot = NULL, *p = NULL, *after = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        ConfirmResult cr = {};
        bool cancelled;
        UpkErr e = {};

        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        install_ok(c, "b.upk", "1.1.0");
        booted = reboot();
        ASSERT_STREQ(booted, "B");
        ASSERT_OK_E(install_mark_good(c, &e), &e);
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_GOOD);
        s = state();
        ASSERT_FALSE(s->pending);
        ASSERT_STREQ(s->version_floor, "1.1.0");
        assert_last_history("mark-good", true, NULL);
        confirm(c, CONFIRM_NOTHING_PENDING, &cr);
        confirm_result_done(&cr);

        ASSERT_OK_E(install_rollback(c, &slot, &cancelled, &e), &e);
        ASSERT_FALSE(cancelled);
        ASSERT_STREQ(slot, "A");
        p = primary(c);
        ASSERT_STREQ(p, "A");
        assert_last_history("rollback", true, NULL);
        after = reboot();
        ASSERT_STREQ(after, "A");
}

TEST(rollback_to_a_bad_slot_is_refused)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ char *before = read_str("bootenv"), *after = NULL;
        char *slot = NULL;
        bool cancelled;
        UpkErr e = {};

        /* B was never installed */
        ASSERT_UPK_ERR(install_rollback(c, &slot, &cancelled, &e), &e, -ENOENT, UPK_ERR_IO,
                       "slot B is marked bad (never installed, or its update failed)");
        ASSERT_TRUE(slot == NULL);
        after = read_str("bootenv");
        ASSERT_STREQ(after, before);
}

/* A refused bundle changes neither the boot environment nor slot B, and the history says why. */
static void assert_refused(const Config *c, const char *bundle, int code, UpkErrKind kind, const char *msg)
{
        _cleanup_free_ char *env_before = read_str("bootenv"), *env_after = NULL;
        InstallResult res = {};
        UpkErr e = {};
        struct stat st;

        ASSERT_UPK_ERR(install_bundle_path(c, bundle, NULL, &res, &e), &e, code, kind, msg);
        ASSERT_TRUE(res.version == NULL && res.slot == NULL);
        env_after = read_str("bootenv");
        ASSERT_STREQ(env_after, env_before);
        ASSERT_OK(stat("slotB.img", &st));
        ASSERT_EQ(st.st_size, 0);
        assert_last_history("install", false, msg);
}

TEST(refused_bundles_change_nothing)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ uint8_t *payload = payload_new(5);

        bundle_new("foreign", "other-gw", "1.1.0", payload, PAYLOAD_SIZE);
        assert_refused(c, "foreign.upk", -EPERM, UPK_ERR_COMPATIBLE,
                       "not compatible: the bundle is for \"other-gw\", this device is \"acme-gw\"");
        bundle_new("same", "acme-gw", "1.0.0", payload, PAYLOAD_SIZE);
        assert_refused(c, "same.upk", -EPERM, UPK_ERR_DOWNGRADE,
                       "downgrade: version 1.0.0 is not newer than the installed version 1.0.0");
        test_write_str("tampered.upk", "not a bundle at all");
        assert_refused(c, "tampered.upk", -EBADMSG, UPK_ERR_FORMAT, "");
        /* a version that, once the floor, no later version could pass */
        bundle_new("last", "acme-gw", "1.18446744073709551615.0", payload, PAYLOAD_SIZE);
        assert_refused(c, "last.upk", -ERANGE, UPK_ERR_DOWNGRADE,
                       "version 1.18446744073709551615.0 is not accepted: a number of 18446744073709551615 "
                       "(2^64-1) could never be raised");
}

TEST(payload_larger_than_the_slot_is_refused)
{
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ uint8_t *payload = payload_new(6);

        config_free(device_new()); /* the device's files; the config under test gives the slot a size */
        c = device_config("small.conf", NULL, "size = 64K\n");

        bundle_new("big", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        assert_refused(c, "big.upk", -EFBIG, UPK_ERR_COMPATIBLE,
                       "not compatible: payload \"rootfs\" is 200000 bytes");
}

static bool cancel_now(void *userdata)
{
        return true;
}

TEST(cancelled_install_leaves_the_old_slot_primary)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ uint8_t *payload = payload_new(7);
        _cleanup_free_ char *p = NULL, *booted = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        InstallOptions o = { .cancelled = cancel_now };
        InstallResult res = {};
        UpkErr e = {};

        bundle_new("b", "acme-gw", "1.1.0", payload, PAYLOAD_SIZE);
        ASSERT_UPK_ERR(install_bundle_path(c, "b.upk", &o, &res, &e), &e, -ECANCELED, UPK_ERR_IO,
                       "cancelled");
        ASSERT_EQ(slot_state(c, "B"), SLOT_STATE_BAD);
        p = primary(c);
        ASSERT_STREQ(p, "A");
        s = state();
        ASSERT_FALSE(s->pending);
        ASSERT_TRUE(state_slot_version(s, "B") == NULL);
        booted = reboot();
        ASSERT_STREQ(booted, "A");
}

/* A delta's source over a bundle file in memory: the furthest byte asked for. */
typedef struct MemRanges {
        const uint8_t *file;
        size_t size;
        uint64_t asked;
} MemRanges;

static int mem_read_range(void *userdata, uint64_t offset, size_t size, void *buf, uint64_t *ret_total,
                          UpkErr *err)
{
        MemRanges *m = userdata;

        if (ret_total)
                *ret_total = m->size;
        if (offset + size > m->asked)
                m->asked = offset + size;
        if (ret_total && offset < m->size && size > m->size - offset)
                size = m->size - offset; /* the first call reads up to the end (InstallDeltaIo) */
        if (offset > m->size || size > m->size - offset)
                return upk_err(err, UPK_ERR_IO, -ERANGE, "range past the file's end");
        memcpy(buf, m->file + offset, size);
        return 0;
}

static int mem_read_ranges(void *userdata, const DeltaRange *ranges, size_t n, void *buf, size_t size,
                           UpkErr *err)
{
        return upk_err(err, UPK_ERR_IO, -EINVAL, "no payload range was to be fetched");
}

/* b.upk as a format-2 bundle whose signed manifest says its index is `index_size` bytes (the index
 * member is the true one); returns the file. */
static char *bundle_claiming_index_size(uint64_t index_size, size_t *ret_size)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_free_ uint8_t *payload = payload_new(3), *sig = NULL;
        _cleanup_free_ char *manifest = NULL;
        const void *raw, *idx;
        size_t raw_size, idx_size, sig_size;
        const char *at, *num;
        UpkErr e = {};

        test_write_file("rootfs.img", payload, PAYLOAD_SIZE);
        test_write_str("manifest.json",
                       "{ \"format\": 1, \"compatible\": \"acme-gw\", \"version\": \"1.1.0\",\n"
                       "  \"build\": \"2026-11-25T10:00:00Z\",\n"
                       "  \"payloads\": [ { \"name\": \"rootfs\", \"file\": \"rootfs.img\", "
                       "\"handler\": \"raw\", \"slot_class\": \"rootfs\" } ] }\n");
        create_bundle2("manifest.json", "orig.upk");
        ASSERT_OK_E(bundle_open_path("orig.upk", &(BundleOpenOptions){ .keep_raw_index = true }, &b, &e),
                    &e);
        bundle_get_raw(b, &raw, &raw_size, NULL, NULL);
        bundle_get_raw_index(b, &idx, &idx_size);
        /* "index":{ "size":N, ...: N replaced */
        manifest = strndup(raw, raw_size);
        ASSERT_TRUE(manifest);
        at = strstr(manifest, "\"index\"");
        ASSERT_TRUE(at);
        num = strstr(at, "\"size\":");
        ASSERT_TRUE(num);
        num += strlen("\"size\":");
        _cleanup_free_ char *crafted = strdup_printf("%.*s%" PRIu64 "%s", (int)(num - manifest), manifest,
                                                     index_size, num + strspn(num, " 0123456789"));
        ASSERT_TRUE(crafted);
        sign_file(crafted, strlen(crafted), &sig, &sig_size);
        write_tar("b.upk",
                  (TarMember[]){ { .name = "manifest.json", .data = crafted, .size = strlen(crafted) },
                                 { .name = "manifest.json.sig", .data = sig, .size = sig_size },
                                 { .name = "chunks.idx", .data = idx, .size = idx_size },
                                 { .name = "rootfs.img", .data = payload, .size = PAYLOAD_SIZE } },
                  4);
        return file_contents("b.upk", ret_size);
}

/* A signed manifest whose index would make the bundle's head larger than anything a delta holds: refused
 * by the manifest's bound (64 MiB, which keeps the head far under install-delta.c's HEAD_MAX) before
 * any range past the first is asked for; at the bound, the index member's true size is refused without
 * asking past the file. Neither falls back to the whole download (the bundle is bad), nothing is
 * written. */
TEST(delta_refuses_a_head_past_its_bounds)
{
        _cleanup_(config_freep) Config *c = device_new();
        static const uint64_t claims[] = { UINT64_C(1) << 40, MANIFEST_INDEX_SIZE_MAX + 1u,
                                           MANIFEST_INDEX_SIZE_MAX };

        for (size_t i = 0; i < ELEMENTSOF(claims); i++) {
                size_t size;
                _cleanup_free_ char *file = bundle_claiming_index_size(claims[i], &size);
                _cleanup_(state_freep) UpkState *s = NULL;
                MemRanges m = { .file = (const uint8_t *)file, .size = size };
                InstallDeltaIo io = { .read_range = mem_read_range,
                                      .read_ranges = mem_read_ranges,
                                      .userdata = &m };
                InstallDeltaStats st = {};
                InstallResult res = {};
                UpkErr e = {};
                int r;

                if (claims[i] > MANIFEST_INDEX_SIZE_MAX) {
                        ASSERT_UPK_ERR(install_bundle_delta(c, &io, NULL, &res, &st, &e), &e, -EBADMSG,
                                       UPK_ERR_MANIFEST, "index.size");
                        ASSERT_TRUE(strstr(e.msg, "larger than the maximum 67108864"));
                        ASSERT_TRUE(m.asked <= 64u * 1024u); /* the first request only */
                } else {
                        r = install_bundle_delta(c, &io, NULL, &res, &st, &e);
                        ASSERT_TRUE(r < 0);
                        ASSERT_EQ(e.kind, UPK_ERR_FORMAT);
                        ASSERT_TRUE(strstr(e.msg, "chunks.idx"));
                        ASSERT_TRUE(m.asked <= size);
                }
                ASSERT_FALSE(install_delta_falls_back(e.code, &e));
                ASSERT_FALSE(st.reached_install);
                assert_slot_holds("slotB.img", "", 0);
                s = state();
                ASSERT_FALSE(s->pending);
        }
}

TEST(one_operation_at_a_time)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_close_ int fd = -EBADF;
        char *slot = NULL;
        bool cancelled;
        ConfirmResult cr = {};
        UpkErr e = {};

        ASSERT_OK(mkdir("data", 0755) < 0 && errno != EEXIST ? -errno : 0);
        fd = open("data/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(flock(fd, LOCK_EX));
        ASSERT_UPK_ERR(install_mark_good(c, &e), &e, -EBUSY, UPK_ERR_IO,
                       "another upkeep operation is running");
        ASSERT_UPK_ERR(install_rollback(c, &slot, &cancelled, &e), &e, -EBUSY, UPK_ERR_IO,
                       "another upkeep operation is running");
        ASSERT_UPK_ERR(install_confirm(c, &cr, &e), &e, -EBUSY, UPK_ERR_IO,
                       "another upkeep operation is running");
        confirm_result_done(&cr);
}

/* A fake sysfs: disk 8:0 (sda) with partition 8:2 (sda2), and 9:0, a disk without partitions. */
static void fake_sysfs(void)
{
        ASSERT_OK(mkdir_p("sysfs/devices/block/sda/sda2", 0755));
        ASSERT_OK(mkdir_p("sysfs/devices/block/md0", 0755));
        ASSERT_OK(mkdir_p("sysfs/dev/block", 0755));
        test_write_str("sysfs/devices/block/sda/dev", "8:0\n");
        test_write_str("sysfs/devices/block/sda/sda2/dev", "8:2\n");
        test_write_str("sysfs/devices/block/sda/sda2/partition", "2\n");
        test_write_str("sysfs/devices/block/md0/dev", "9:0\n");
        ASSERT_OK(symlink("../../devices/block/sda", "sysfs/dev/block/8:0"));
        ASSERT_OK(symlink("../../devices/block/sda/sda2", "sysfs/dev/block/8:2"));
        ASSERT_OK(symlink("../../devices/block/md0", "sysfs/dev/block/9:0"));
}

TEST(whole_disk_of_a_partition_from_sysfs)
{
        _cleanup_free_ char *sysfs = test_cwd_path("sysfs");
        dev_t d = 1;

        fake_sysfs();
        ASSERT_OK(install_block_whole_disk(sysfs, makedev(8, 2), &d));
        ASSERT_EQ(d, makedev(8, 0));
        ASSERT_OK(install_block_whole_disk(sysfs, makedev(8, 0), &d));
        ASSERT_EQ(d, 0);
        ASSERT_OK(install_block_whole_disk(sysfs, makedev(9, 0), &d));
        ASSERT_EQ(d, 0);
        ASSERT_OK(install_block_whole_disk(sysfs, makedev(7, 7), &d)); /* not in sysfs */
        ASSERT_EQ(d, 0);
}

/* A target that is the whole disk holding a slot partition (or a partition of a slot that is a whole
 * disk) would overwrite the slot: refused like the slot itself. Device nodes need CAP_MKNOD. */
TEST(target_on_the_disk_of_a_slot_is_refused)
{
        _cleanup_(config_freep) Config *c = device_new();
        _cleanup_free_ char *sysfs = test_cwd_path("sysfs"), *disk = test_cwd_path("sda"),
                            *part = test_cwd_path("sda2"), *other = test_cwd_path("md0"), *want = NULL;
        UpkErr e = {};

        fake_sysfs();
        if (mknod("sda", S_IFBLK | 0600, makedev(8, 0)) < 0 ||
            mknod("sda2", S_IFBLK | 0600, makedev(8, 2)) < 0 ||
            mknod("md0", S_IFBLK | 0600, makedev(9, 0)) < 0)
                test_skip("cannot make block device nodes here");
        ASSERT_OK(setenv("UPKEEP_TEST_SYSFS", sysfs, 1));
        free(c->slots[0].device);
        c->slots[0].device = strdup(part);
        want = strdup_printf("payload \"boot\": target %s is or lies in slot %s.%s (%s)", disk,
                             c->slots[0].class, c->slots[0].name, part);
        ASSERT_UPK_ERR(install_check_target(c, "boot", disk, &e), &e, -EPERM, UPK_ERR_COMPATIBLE, want);
        ASSERT_OK_E(install_check_target(c, "boot", other, &e), &e);

        /* the other way round: the slot is the whole disk, the target one of its partitions */
        free(c->slots[0].device);
        c->slots[0].device = strdup(disk);
        ASSERT_UPK_ERR(install_check_target(c, "boot", part, &e), &e, -EPERM, UPK_ERR_COMPATIBLE,
                       "is or lies in slot ");
        ASSERT_OK_E(install_check_target(c, "boot", other, &e), &e);
}
