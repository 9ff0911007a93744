/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The uboot backend: the boot-counting variables of the file backend in the U-Boot environment, read
 * with `fw_printenv -n VAR...` and written with ONE `fw_setenv -s -` per update (libubootenv writes the
 * whole environment once; with a redundant environment that write is atomic). */
#include <stdio.h>

#include "boot-internal.h"

#define UBOOT_VARS_MAX (2 + 2 * BOOT_SLOTS_MAX)

typedef struct UbootEnv {
        char *keys[UBOOT_VARS_MAX];
        char *values[UBOOT_VARS_MAX]; /* NULL: unset (U-Boot does not tell unset from empty) */
        size_t n;
} UbootEnv;

static void uboot_env_done(UbootEnv *e)
{
        for (size_t i = 0; i < e->n; i++) {
                free(e->keys[i]);
                free(e->values[i]);
        }
        e->n = 0;
}

static int tool_argv(BootBackend *b, const char *tool, const char **argv, size_t *n)
{
        argv[(*n)++] = tool;
        if (b->path) {
                argv[(*n)++] = "-c";
                argv[(*n)++] = b->path;
        }
        return 0;
}

static int uboot_read(BootBackend *b, UbootEnv *e, UpkErr *err)
{
        const char *argv[4 + UBOOT_VARS_MAX + 1];
        _cleanup_free_ char *out = NULL, *errtext = NULL;
        size_t n = 0;
        const char *p;
        int r;

        *e = (UbootEnv){};
        e->keys[e->n++] = strdup("BOOT_ORDER");
        e->keys[e->n++] = strdup("BOOTED");
        for (size_t i = 0; i < b->n_slots; i++) {
                e->keys[e->n++] = strdup_printf("BOOT_%s_LEFT", b->slots[i]);
                e->keys[e->n++] = strdup_printf("BOOT_%s_TRY", b->slots[i]);
        }
        for (size_t i = 0; i < e->n; i++)
                if (!e->keys[i]) {
                        uboot_env_done(e);
                        return upk_err_oom(err);
                }

        tool_argv(b, "fw_printenv", argv, &n);
        argv[n++] = "-n";
        for (size_t i = 0; i < e->n; i++)
                argv[n++] = e->keys[i];
        argv[n] = NULL;
        r = process_run(&(ProcessRun){ .argv = argv,
                                       .search_path = true,
                                       .output_max = BOOT_TOOL_OUTPUT_MAX,
                                       .timeout_usec = b->timeout_usec,
                                       .what = "uboot backend: fw_printenv" },
                        &out, &errtext, err);
        if (r > 0)
                r = upk_err(
                        err, UPK_ERR_IO, -EIO, "uboot backend: fw_printenv%s%s failed with status %d: %s",
                        b->path ? " -c " : "", b->path ? b->path : "", r, process_output_summary(errtext));
        if (r < 0) {
                uboot_env_done(e);
                return r;
        }

        /* One line per variable asked, in order; an unset variable is an empty line. */
        p = out;
        for (size_t i = 0; i < e->n; i++) {
                const char *nl = strchr(p, '\n');
                if (!nl) {
                        uboot_env_done(e);
                        return upk_err(err, UPK_ERR_IO, -EBADMSG,
                                       "uboot backend: fw_printenv printed %zu lines for %zu variables", i,
                                       e->n);
                }
                if (nl > p) {
                        if ((size_t)(nl - p) > BOOT_VALUE_MAX) {
                                r = upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                            "U-Boot variable %s: longer than %u bytes", e->keys[i],
                                            BOOT_VALUE_MAX);
                                uboot_env_done(e);
                                return r;
                        }
                        e->values[i] = strndup(p, (size_t)(nl - p));
                        if (!e->values[i]) {
                                uboot_env_done(e);
                                return upk_err_oom(err);
                        }
                }
                p = nl + 1;
        }
        if (*p) {
                uboot_env_done(e);
                return upk_err(err, UPK_ERR_IO, -EBADMSG,
                               "uboot backend: fw_printenv printed more lines than the %zu variables asked "
                               "(a value "
                               "with a newline?)",
                               e->n);
        }
        return 0;
}

static const char *uboot_get(const UbootEnv *e, const char *key)
{
        for (size_t i = 0; i < e->n; i++)
                if (streq(e->keys[i], key))
                        return e->values[i];
        return NULL;
}

static const char *uboot_lookup(void *userdata, const char *key, char *where, size_t where_size)
{
        snprintf(where, where_size, "U-Boot variable %s", key);
        return uboot_get(userdata, key);
}

static int uboot_load(BootBackend *b, UbootEnv *e, BootVars *v, UpkErr *err)
{
        int r = uboot_read(b, e, err);
        if (r < 0)
                return r;
        r = boot_vars_load(v, b->slots, b->n_slots, b->attempts, uboot_lookup, e, err);
        if (r < 0)
                uboot_env_done(e);
        return r;
}

static bool value_eq(const char *a, const char *b)
{
        return streq(a ? a : "", b ? b : "");
}

/* Write the variables that differ from `old` in one fw_setenv call, then read them back. */
static int uboot_store(BootBackend *b, const UbootEnv *old, const BootVars *v, UpkErr *err)
{
        const char *argv[6];
        _cleanup_free_ char *script = NULL, *errtext = NULL;
        size_t n = 0, size = 0;
        UbootEnv now;
        BootKV *kv;
        size_t n_kv;
        int r;

        r = boot_vars_to_kv(v, false, &kv, &n_kv);
        if (r < 0)
                return upk_err_oom(err);
        for (size_t i = 0; i < n_kv; i++) {
                const char *was = uboot_get(old, kv[i].key);
                char *line, *p;

                if (value_eq(was, kv[i].value))
                        continue;
                line = strdup_printf("%s=%s\n", kv[i].key, kv[i].value ? kv[i].value : "");
                p = line ? realloc(script, size + strlen(line) + 1) : NULL;
                if (!p) {
                        free(line);
                        boot_kv_free(kv, n_kv);
                        return upk_err_oom(err);
                }
                memcpy(p + size, line, strlen(line) + 1);
                size += strlen(line);
                script = p;
                free(line);
        }
        if (!script) {
                boot_kv_free(kv, n_kv);
                return 0; /* nothing changes */
        }

        tool_argv(b, "fw_setenv", argv, &n);
        argv[n++] = "-s";
        argv[n++] = "-";
        argv[n] = NULL;
        r = process_run(&(ProcessRun){ .argv = argv,
                                       .search_path = true,
                                       .input = script,
                                       .input_size = size,
                                       .output_max = BOOT_TOOL_OUTPUT_MAX,
                                       .timeout_usec = b->timeout_usec,
                                       .what = "uboot backend: fw_setenv" },
                        NULL, &errtext, err);
        if (r > 0)
                r = upk_err(err, UPK_ERR_IO, -EIO, "uboot backend: fw_setenv%s%s failed with status %d: %s",
                            b->path ? " -c " : "", b->path ? b->path : "", r,
                            process_output_summary(errtext));
        if (r < 0) {
                boot_kv_free(kv, n_kv);
                return r;
        }

        /* fw_setenv -s ignores variables it cannot set: check that everything landed. */
        r = uboot_read(b, &now, err);
        if (r < 0) {
                boot_kv_free(kv, n_kv);
                return r;
        }
        for (size_t i = 0; i < n_kv && r >= 0; i++) {
                const char *got = uboot_get(&now, kv[i].key);
                if (!value_eq(got, kv[i].value))
                        r = upk_err(err, UPK_ERR_IO, -EIO,
                                    "uboot backend: fw_setenv did not store %s=\"%s\" (the environment "
                                    "holds \"%s\")",
                                    kv[i].key, kv[i].value ? kv[i].value : "", got ? got : "");
        }
        uboot_env_done(&now);
        boot_kv_free(kv, n_kv);
        return r;
}

static int uboot_init(BootBackend *b, const Config *c, UpkErr *err)
{
        if (!process_find_program("fw_printenv") || !process_find_program("fw_setenv"))
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT,
                               "[boot] backend = uboot needs fw_printenv and fw_setenv (libubootenv-tool): "
                               "not found "
                               "in PATH");
        if (!isempty(c->boot_uboot_config)) {
                if (access(c->boot_uboot_config, R_OK) < 0)
                        return upk_err(err, UPK_ERR_CONFIG, -errno, "[boot] uboot-config: %s: %m",
                                       c->boot_uboot_config);
                b->path = strdup(c->boot_uboot_config);
                if (!b->path)
                        return upk_err_oom(err);
        }
        return 0;
}

static int uboot_vars_load(BootBackend *b, void **ret_ctx, BootVars *v, UpkErr *err)
{
        UbootEnv *e = malloc(sizeof(*e));
        int r;

        if (!e)
                return upk_err_oom(err);
        r = uboot_load(b, e, v, err);
        if (r < 0) {
                free(e);
                return r;
        }
        *ret_ctx = e;
        return 0;
}

static int uboot_vars_store(BootBackend *b, void *ctx, const BootVars *v, UpkErr *err)
{
        return uboot_store(b, ctx, v, err);
}

static void uboot_vars_free(void *ctx)
{
        uboot_env_done(ctx);
        free(ctx);
}

static const BootVarsStore uboot_vars = {
        .load = uboot_vars_load,
        .store = uboot_vars_store,
        .free_ctx = uboot_vars_free,
        .where = "U-Boot environment",
        .no_booted = "no BOOTED variable (the boot script does not record the slot)",
};

const BootOps boot_uboot_ops = {
        .init = uboot_init,
        .vars = &uboot_vars,
        .mark_bad = boot_vars_op_mark_bad,
        .set_try = boot_vars_op_set_try,
        .mark_good = boot_vars_op_mark_good,
        .get_primary = boot_vars_op_get_primary,
        .get_state = boot_vars_op_get_state,
        .get_current = boot_vars_op_get_current,
};
