/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The script backend: a program of the image builder's that speaks five verbs (see boot.h). */
#include <stdio.h>
#include <sys/stat.h>

#include "boot-internal.h"
#include "fileio.h"
#include "strv.h"

#define SCRIPT_EXIT_UNKNOWN 3 /* get-current: the booted slot is not known */

static int script_init(BootBackend *b, const Config *c, UpkErr *err)
{
        struct stat st;

        if (isempty(c->boot_script))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "[boot] script: not set (the script backend needs it)");
        if (c->boot_script[0] != '/')
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "[boot] script: %s is not an absolute path",
                               c->boot_script);
        if (stat(c->boot_script, &st) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -errno, "[boot] script: %s: %m", c->boot_script);
        if (!S_ISREG(st.st_mode))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "[boot] script: %s is not a regular file",
                               c->boot_script);
        if (access(c->boot_script, X_OK) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -errno, "[boot] script: %s is not executable: %m",
                               c->boot_script);
        if (path_check_trusted(c->boot_script, false, err) < 0)
                return upk_err_prefix(err, "[boot] script refused");
        b->path = strdup(c->boot_script);
        if (!b->path)
                return upk_err_oom(err);
        if (!isempty(c->boot_state_file)) {
                b->state_file = strdup(c->boot_state_file);
                if (!b->state_file)
                        return upk_err_oom(err);
        }
        return 0;
}

/* Nothing of the daemon's environment: PATH, UPKEEP_BOOT_SLOTS, UPKEEP_BOOT_ATTEMPTS and, when configured,
 * UPKEEP_BOOT_STATE_FILE. */
static char **script_env(BootBackend *b)
{
        _cleanup_free_ char *slots = boot_order_format(b->slots, NULL, b->n_slots);
        _cleanup_free_ char *attempts = strdup_printf("%u", b->attempts);
        const char *const kv[] = { "UPKEEP_BOOT_SLOTS",      slots,        "UPKEEP_BOOT_ATTEMPTS", attempts,
                                   "UPKEEP_BOOT_STATE_FILE", b->state_file };

        if (!slots || !attempts)
                return NULL;
        return process_env_new(kv, ELEMENTSOF(kv) / 2);
}

/* Run `PROG VERB [SLOT [ARG]]`; returns its exit status, with stdout in *ret_out when 0 (or 3 on
 * get-current). */
static int run_script(BootBackend *b, const char *verb, const char *slot, const char *arg, char **ret_out,
                      UpkErr *err)
{
        const char *argv[] = { b->path, verb, slot, arg, NULL };
        _cleanup_free_ char *out = NULL, *errtext = NULL, *what = NULL;
        char **env = script_env(b);
        int r;

        what = strdup_printf("boot script %s %s%s%s%s%s", b->path, verb, slot ? " " : "", slot ? slot : "",
                             arg ? " " : "", arg ? arg : "");
        if (!env || !what) {
                strv_free(env);
                return upk_err_oom(err);
        }
        r = process_run(&(ProcessRun){ .argv = argv,
                                       .envp = env,
                                       .output_max = BOOT_SCRIPT_OUTPUT_MAX,
                                       .timeout_usec = b->timeout_usec,
                                       .what = what },
                        &out, &errtext, err);
        strv_free(env);
        if (r < 0)
                return r;
        if (r != 0 && !(r == SCRIPT_EXIT_UNKNOWN && streq(verb, "get-current")))
                return upk_err(err, UPK_ERR_IO, -EIO, "%s: exited with status %d%s%s", what, r,
                               isempty(errtext) ? "" : ": ", process_output_summary(errtext));
        if (ret_out)
                *ret_out = TAKE_PTR(out);
        return r;
}

/* The first line of `out`, without surrounding blanks. In place. */
static char *first_line(char *out)
{
        char *s = out + strspn(out, " \t\r\n");
        size_t n = strcspn(s, "\n");

        s[n] = 0;
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
                s[--n] = 0;
        return s;
}

static int parse_slot(BootBackend *b, const char *verb, char *out, size_t *ret, UpkErr *err)
{
        const char *s = first_line(out);
        int i = boot_slot_index(b->slots, b->n_slots, s);

        if (i < 0)
                return upk_err(err, UPK_ERR_IO, -EBADMSG,
                               "boot script %s %s: printed \"%s\", not one of the slots", b->path, verb,
                               format_value(s));
        *ret = (size_t)i;
        return 0;
}

static int script_mark_bad(BootBackend *b, size_t slot, UpkErr *err)
{
        int r = run_script(b, "set-state", b->slots[slot], "bad", NULL, err);
        return r < 0 ? r : 0;
}

static int script_set_try(BootBackend *b, size_t slot, UpkErr *err)
{
        int r = run_script(b, "set-primary", b->slots[slot], NULL, NULL, err);
        return r < 0 ? r : 0;
}

static int script_mark_good(BootBackend *b, size_t slot, UpkErr *err)
{
        int r = run_script(b, "set-state", b->slots[slot], "good", NULL, err);
        return r < 0 ? r : 0;
}

static int script_get_primary(BootBackend *b, size_t *ret, UpkErr *err)
{
        _cleanup_free_ char *out = NULL;
        int r = run_script(b, "get-primary", NULL, NULL, &out, err);
        return r < 0 ? r : parse_slot(b, "get-primary", out, ret, err);
}

static int script_get_state(BootBackend *b, size_t slot, SlotState *ret, UpkErr *err)
{
        _cleanup_free_ char *out = NULL;
        SlotState s;
        const char *line;
        int r;

        r = run_script(b, "get-state", b->slots[slot], NULL, &out, err);
        if (r < 0)
                return r;
        line = first_line(out);
        s = slot_state_from_string(line);
        if (s < 0)
                return upk_err(err, UPK_ERR_IO, -EBADMSG,
                               "boot script %s get-state %s: printed \"%s\", not good, bad or try", b->path,
                               b->slots[slot], format_value(line));
        *ret = s;
        return 0;
}

static int script_get_current(BootBackend *b, size_t *ret, UpkErr *err)
{
        _cleanup_free_ char *out = NULL;
        int r = run_script(b, "get-current", NULL, NULL, &out, err);

        if (r < 0)
                return r;
        if (r == SCRIPT_EXIT_UNKNOWN)
                return upk_err(err, UPK_ERR_IO, -ENODATA,
                               "boot script %s get-current: the booted slot is not known", b->path);
        return parse_slot(b, "get-current", out, ret, err);
}

const BootOps boot_script_ops = {
        .init = script_init,
        .mark_bad = script_mark_bad,
        .set_try = script_set_try,
        .mark_good = script_mark_good,
        .get_primary = script_get_primary,
        .get_state = script_get_state,
        .get_current = script_get_current,
};
