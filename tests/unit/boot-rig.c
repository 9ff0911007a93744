/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulated bootloaders of the unit tests (boot-rig.h). */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "boot-rig.h"
#include "boot.h"
#include "fileio.h"

/* contrib/boot-script-example.sh: UPKEEP_TEST_DATA is SRC/tests/unit/data (which need not exist). */
char *example_script(void)
{
        static const char suffix[] = "/tests/unit/data";
        const char *data = getenv("UPKEEP_TEST_DATA");
        size_t n;

        if (!data)
                test_fail("UPKEEP_TEST_DATA is not set");
        n = strlen(data);
        if (n < strlen(suffix) || !streq(data + n - strlen(suffix), suffix))
                test_fail("UPKEEP_TEST_DATA=%s does not end in %s", data, suffix);
        return strdup_printf("%.*s/contrib/boot-script-example.sh", (int)(n - strlen(suffix)), data);
}

void run_sh(const char *cmd)
{
        int r = system(cmd);
        if (r != 0)
                test_fail("command failed (%d): %s", r, cmd);
}

void require_tool(const char *tool, const char *package)
{
        _cleanup_free_ char *cmd = strdup_printf("command -v %s >/dev/null", tool);
        if (system(cmd) != 0)
                test_fail("%s is missing: install %s (tools/run-tests does)", tool, package);
}

const char *map_get(const Map *m, const char *k)
{
        for (size_t i = 0; i < m->n; i++)
                if (streq(m->key[i], k))
                        return m->val[i];
        return "";
}

static void map_set(Map *m, const char *k, const char *v)
{
        size_t i;
        for (i = 0; i < m->n; i++)
                if (streq(m->key[i], k))
                        break;
        if (i == m->n) {
                ASSERT_TRUE(m->n < 32);
                snprintf(m->key[m->n++], sizeof(m->key[0]), "%s", k);
        }
        snprintf(m->val[i], sizeof(m->val[0]), "%s", v);
}

/* KEY=VALUE lines from a command. */
void map_read(Map *m, const char *cmd)
{
        char line[512];
        FILE *f = popen(cmd, "r");

        ASSERT_TRUE(f);
        m->n = 0;
        while (fgets(line, sizeof(line), f)) {
                char *eq = strchr(line, '=');
                line[strcspn(line, "\n")] = 0;
                if (!eq)
                        continue;
                *eq = 0;
                map_set(m, line, eq + 1);
        }
        ASSERT_EQ(pclose(f), 0);
}

/* The value of PREFIX SLOT SUFFIX. */
static const char *var(const Map *m, const char *prefix, const char *slot, const char *suffix)
{
        char k[64];
        snprintf(k, sizeof(k), "%s%s%s", prefix, slot, suffix);
        return map_get(m, k);
}

/* Split `s` (modified) at spaces into at most `max` words. */
static size_t split_words(char *s, char **words, size_t max)
{
        size_t n = 0;

        for (char *p = s; *p && n < max;) {
                p += strspn(p, " ");
                if (!*p)
                        break;
                words[n++] = p;
                p += strcspn(p, " ");
                if (*p)
                        *p++ = 0;
        }
        return n;
}

void file_setup(Config *c)
{
        c->boot_backend = BOOT_BACKEND_FILE;
        c->boot_state_file = test_cwd_path("bootenv");
}

char *file_reboot(const Config *c)
{
        char *booted = NULL;
        UpkErr e = {};

        ASSERT_OK_E(boot_file_simulate_boot(c->boot_state_file, &booted, &e), &e);
        return booted;
}

void uboot_setup(Config *c)
{
        _cleanup_free_ char *env = test_cwd_path("uboot.env"), *cfg = test_cwd_path("fw_env.config"),
                            *text = NULL, *cmd = NULL;

        require_tool("fw_printenv", "libubootenv-tool");
        require_tool("fw_setenv", "libubootenv-tool");
        /* A redundant environment: two copies of 16 KiB in one file. */
        text = strdup_printf("%s 0x0 0x4000\n%s 0x4000 0x4000\n", env, env);
        test_write_file(cfg, text, strlen(text));
        run_sh("truncate -s 32768 uboot.env");
        /* libubootenv refuses a bad CRC unless given a default environment: write a valid one. */
        cmd = strdup_printf("printf 'bootdelay=3\\n' | fw_setenv -c %s -f /dev/null -s - 2>/dev/null", cfg);
        run_sh(cmd);
        c->boot_backend = BOOT_BACKEND_UBOOT;
        c->boot_uboot_config = TAKE_PTR(cfg);
}

/* U-Boot with a boot-count script: the first slot in BOOT_ORDER with BOOT_x_LEFT > 0 loses one
 * attempt; none: the first without a try marker, else the first; records BOOTED. */
static char *uboot_reboot(const Config *c)
{
        _cleanup_free_ char *cmd = strdup_printf("fw_printenv -c %s 2>/dev/null", c->boot_uboot_config);
        char order[256], *booted = NULL, *fallback = NULL, *list[8];
        size_t n;
        Map m;
        FILE *f;

        map_read(&m, cmd);
        snprintf(order, sizeof(order), "%s", map_get(&m, "BOOT_ORDER"));
        if (!order[0])
                snprintf(order, sizeof(order), "A B");
        n = split_words(order, list, 8);
        ASSERT_TRUE(n > 0);
        for (size_t i = 0; i < n && !booted; i++) {
                const char *left = var(&m, "BOOT_", list[i], "_LEFT");
                uint64_t u = 0;

                if (!fallback && !streq(var(&m, "BOOT_", list[i], "_TRY"), "1"))
                        fallback = list[i];
                /* U-Boot never saw an environment of upkeep's: A is good */
                if (!map_get(&m, "BOOT_ORDER")[0] && streq(list[i], "A") && !left[0])
                        left = "3";
                if (left[0])
                        ASSERT_OK(safe_atou64(left, &u));
                if (u > 0) {
                        char k[64], v[16];
                        snprintf(k, sizeof(k), "BOOT_%s_LEFT", list[i]);
                        snprintf(v, sizeof(v), "%" PRIu64, u - 1);
                        map_set(&m, k, v);
                        booted = strdup(list[i]);
                }
        }
        if (!booted)
                booted = strdup(fallback ? fallback : list[0]);
        ASSERT_TRUE(booted);
        map_set(&m, "BOOTED", booted);

        f = fopen("uboot-script", "we");
        ASSERT_TRUE(f);
        for (size_t i = 0; i < m.n; i++)
                fprintf(f, "%s=%s\n", m.key[i], m.val[i]);
        ASSERT_EQ(fclose(f), 0);
        free(cmd);
        cmd = strdup_printf("fw_setenv -c %s -s uboot-script", c->boot_uboot_config);
        run_sh(cmd);
        return booted;
}

void grub_setup(Config *c)
{
        require_tool("grub-editenv", "grub-common");
        c->boot_backend = BOOT_BACKEND_GRUB;
        c->boot_grubenv = test_cwd_path("grubenv");
}

/* contrib/grub/upkeep.cfg, in C. */
static char *grub_reboot(const Config *c)
{
        _cleanup_free_ char *cmd = strdup_printf("grub-editenv %s list", c->boot_grubenv);
        char order[256], *booted = NULL, k[64], *list[8];
        size_t n;
        Map m;

        map_read(&m, cmd);
        snprintf(order, sizeof(order), "%s", map_get(&m, "ORDER"));
        if (!order[0]) {
                snprintf(order, sizeof(order), "A B");
                map_set(&m, "A_OK", "1");
                map_set(&m, "B_OK", "0");
        }
        n = split_words(order, list, 8);
        ASSERT_TRUE(n > 0);
        for (size_t i = 0; i < n && !booted; i++)
                if (streq(var(&m, "", list[i], "_OK"), "1") && !streq(var(&m, "", list[i], "_TRY"), "1")) {
                        booted = list[i];
                        snprintf(k, sizeof(k), "%s_TRY", list[i]);
                        map_set(&m, k, "1");
                }
        for (size_t i = 0; i < n && !booted; i++)
                if (streq(var(&m, "", list[i], "_OK"), "1") && !streq(var(&m, "", list[i], "_PENDING"), "1"))
                        booted = list[i];
        if (!booted)
                booted = list[0];
        free(cmd);
        cmd = strdup_printf("grub-editenv %s set A_TRY=%s B_TRY=%s", c->boot_grubenv,
                            map_get(&m, "A_TRY")[0] ? map_get(&m, "A_TRY") : "0",
                            map_get(&m, "B_TRY")[0] ? map_get(&m, "B_TRY") : "0");
        run_sh(cmd);
        return strdup(booted);
}

void script_setup(Config *c)
{
        c->boot_backend = BOOT_BACKEND_SCRIPT;
        c->boot_script = example_script();
        c->boot_state_file = test_cwd_path("script-bootenv");
}

/* The raw variables: the state file's lines, the U-Boot environment, the grubenv. */
static void file_env(const Config *c, Map *m)
{
        _cleanup_free_ char *cmd = strdup_printf("tr -d '\"' <%s", c->boot_state_file); /* unquoted */
        map_read(m, cmd);
}

static void uboot_env(const Config *c, Map *m)
{
        _cleanup_free_ char *cmd = strdup_printf("fw_printenv -c %s 2>/dev/null", c->boot_uboot_config);
        map_read(m, cmd);
}

static void grub_env(const Config *c, Map *m)
{
        _cleanup_free_ char *cmd = strdup_printf("grub-editenv %s list", c->boot_grubenv);
        map_read(m, cmd);
}

const Rig rig_file = { "file", file_setup, file_reboot, file_env, true };
const Rig rig_uboot = { "uboot", uboot_setup, uboot_reboot, uboot_env, true };
const Rig rig_grub = { "grub", grub_setup, grub_reboot, grub_env, false };
/* The example script keeps the file backend's format, so its state file reboots like one. */
const Rig rig_script = { "script", script_setup, file_reboot, file_env, true };

char *rig_boot_lines(const Rig *rig)
{
        Config c = { .boot_attempts = 3 };
        char *text;

        rig->setup(&c);
        text = strdup_printf("backend = %s\n%s%s%s%s%s%s%s%s%s%s%s%s", rig->name,
                             c.boot_state_file ? "state-file = " : "", c.boot_state_file ?: "",
                             c.boot_state_file ? "\n" : "", c.boot_script ? "script = " : "",
                             c.boot_script ?: "", c.boot_script ? "\n" : "",
                             c.boot_grubenv ? "grubenv = " : "", c.boot_grubenv ?: "",
                             c.boot_grubenv ? "\n" : "", c.boot_uboot_config ? "uboot-config = " : "",
                             c.boot_uboot_config ?: "", c.boot_uboot_config ? "\n" : "");
        ASSERT_TRUE(text);
        free(c.boot_state_file);
        free(c.boot_script);
        free(c.boot_grubenv);
        free(c.boot_uboot_config);
        return text;
}
