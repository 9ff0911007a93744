/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The grub backend: ORDER, <S>_OK, <S>_TRY and <S>_PENDING in a grubenv, through grub-editenv.
 * grub.cfg (contrib/grub/upkeep.cfg) boots the first slot in ORDER with OK=1 and TRY=0 and sets its
 * TRY=1; upkeep clears TRY again when it marks the slot good. PENDING is upkeep's own marker for "set to
 * try once, not confirmed yet" (grub ignores it). Every update edits a copy of the grubenv with ONE
 * `grub-editenv COPY set ...` and renames it over the original, so a power cut leaves the old or the new
 * block (grub-editenv itself rewrites in place). A grubenv that is a symbolic link (the UEFI layout links
 * /boot/grub/grubenv to the ESP) is written through: the copy goes next to the file the link names and
 * replaces that file, the link stays. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "boot-internal.h"
#include "fileio.h"
#include "path-util.h"

typedef struct GrubVars {
        size_t order[BOOT_SLOTS_MAX];
        size_t n_order;
        bool ok[BOOT_SLOTS_MAX];
        bool tried[BOOT_SLOTS_MAX];   /* <S>_TRY: grub has booted it since it was last marked good */
        bool pending[BOOT_SLOTS_MAX]; /* <S>_PENDING: set to try, not confirmed */
} GrubVars;

static int run_editenv(BootBackend *b, const char *file, const char *const *args, char **ret_out,
                       UpkErr *err)
{
        const char *argv[3 + 1 + 3 * BOOT_SLOTS_MAX + 1 + 1];
        _cleanup_free_ char *out = NULL, *errtext = NULL;
        size_t n = 0;
        int r;

        argv[n++] = "grub-editenv";
        argv[n++] = file;
        for (size_t i = 0; args[i]; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        r = process_run(&(ProcessRun){ .argv = argv,
                                       .search_path = true,
                                       .output_max = BOOT_TOOL_OUTPUT_MAX,
                                       .timeout_usec = b->timeout_usec,
                                       .what = "grub backend: grub-editenv" },
                        &out, &errtext, err);
        if (r > 0)
                r = upk_err(err, UPK_ERR_IO, -EIO,
                            "grub backend: grub-editenv %s %s failed with status %d: %s", file, args[0], r,
                            process_output_summary(errtext));
        if (r < 0)
                return r;
        if (ret_out)
                *ret_out = TAKE_PTR(out);
        return 0;
}

static int var_bool(const char *val, const char *key, const char *file, bool *ret, UpkErr *err)
{
        if (!val || streq(val, "0"))
                *ret = false;
        else if (streq(val, "1"))
                *ret = true;
        else
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s: %s: \"%s\" is neither 0 nor 1", file, key,
                               format_value(val));
        return 0;
}

/* The value of KEY in `grub-editenv list` output (NULL: unset). A variable listed twice is an error. */
static int list_lookup(const char *list, const char *key, const char *file, char **ret, UpkErr *err)
{
        size_t klen = strlen(key);
        char *found = NULL;

        for (const char *p = list; *p;) {
                const char *nl = strchrnul(p, '\n');
                if ((size_t)(nl - p) > klen && strneq(p, key, klen) && p[klen] == '=') {
                        if (found) {
                                free(found);
                                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s: %s is listed twice", file,
                                               key);
                        }
                        if ((size_t)(nl - p) - klen - 1 > BOOT_VALUE_MAX)
                                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                               "%s: %s is longer than %u bytes", file, key, BOOT_VALUE_MAX);
                        found = strndup(p + klen + 1, (size_t)(nl - p) - klen - 1);
                        if (!found)
                                return upk_err_oom(err);
                }
                p = *nl ? nl + 1 : nl;
        }
        *ret = found;
        return 0;
}

static int grub_load(BootBackend *b, GrubVars *v, UpkErr *err)
{
        _cleanup_free_ char *list = NULL, *order = NULL;
        char where[512];
        bool initialised;
        int r;

        *v = (GrubVars){};
        if (access(b->path, F_OK) < 0) {
                if (errno != ENOENT)
                        return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", b->path);
                list = strdup(""); /* `list` would create it: reading does not write */
                if (!list)
                        return upk_err_oom(err);
        } else {
                r = run_editenv(b, b->path, (const char *const[]){ "list", NULL }, &list, err);
                if (r < 0)
                        return r;
        }

        r = list_lookup(list, "ORDER", b->path, &order, err);
        if (r < 0)
                return r;
        initialised = !isempty(order);
        if (initialised) {
                snprintf(where, sizeof(where), "%s: ORDER", b->path);
                r = boot_order_parse(order, b->slots, b->n_slots, v->order, &v->n_order, where, err);
                if (r < 0)
                        return r;
        } else {
                for (size_t i = 0; i < b->n_slots; i++)
                        v->order[i] = i;
                v->n_order = b->n_slots;
        }

        for (size_t i = 0; i < b->n_slots; i++) {
                static const char *const suffix[] = { "OK", "TRY", "PENDING" };
                bool *dest[] = { &v->ok[i], &v->tried[i], &v->pending[i] };

                for (size_t s = 0; s < ELEMENTSOF(suffix); s++) {
                        _cleanup_free_ char *key = strdup_printf("%s_%s", b->slots[i], suffix[s]),
                                            *val = NULL;
                        if (!key)
                                return upk_err_oom(err);
                        r = list_lookup(list, key, b->path, &val, err);
                        if (r < 0)
                                return r;
                        if (!val && s == 0 && !initialised)
                                *dest[s] = i == 0; /* a fresh grubenv: the first slot is the good one */
                        else {
                                r = var_bool(val, key, b->path, dest[s], err);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

/* The file to replace: the grubenv itself, or the file its symbolic link (chain) names. */
static int grub_target(const char *path, char **ret, UpkErr *err)
{
        struct stat st;

        if (lstat(path, &st) < 0 || !S_ISLNK(st.st_mode)) {
                *ret = strdup(path);
                return *ret ? 0 : upk_err_oom(err);
        }
        *ret = realpath(path, NULL);
        if (!*ret)
                return upk_err(err, UPK_ERR_IO, -errno,
                               "grub backend: %s is a symbolic link that cannot be followed: %m", path);
        return 0;
}

static int grub_store(BootBackend *b, const GrubVars *v, UpkErr *err)
{
        const char *args[2 + 3 * BOOT_SLOTS_MAX + 1 + 1];
        char *owned[1 + 3 * BOOT_SLOTS_MAX] = {};
        _cleanup_free_ char *target = NULL, *dir = NULL, *tmp = NULL, *data = NULL, *order = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        size_t n = 0, n_owned = 0, size = 0;
        bool exists;
        int r;

        r = grub_target(b->path, &target, err);
        if (r < 0)
                return r;
        dir = path_dirname(target);
        if (!dir)
                return upk_err_oom(err);
        tmp = strdup_printf("%s/.#upkeep-grubenv.XXXXXX", dir);
        if (!tmp)
                return upk_err_oom(err);

        r = read_full_file(target, BOOT_STATE_FILE_MAX, &data, &size);
        exists = r >= 0;
        if (r < 0 && r != -ENOENT)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot read: %m", target);

        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "grub backend: cannot create a file in %s: %m", dir);
        if (exists) {
                r = loop_write(fd, data, size);
                if (r < 0) {
                        upk_err(err, UPK_ERR_IO, r, "grub backend: cannot write %s: %m", tmp);
                        goto fail;
                }
        } else {
                r = run_editenv(b, tmp, (const char *const[]){ "create", NULL }, NULL, err);
                if (r < 0)
                        goto fail;
        }

        args[n++] = "set";
        order = boot_order_format(b->slots, v->order, v->n_order);
        if (!order || !(owned[n_owned++] = strdup_printf("ORDER=%s", order))) {
                r = -ENOMEM;
                goto fail;
        }
        args[n++] = owned[n_owned - 1];
        for (size_t i = 0; i < b->n_slots; i++) {
                owned[n_owned++] = strdup_printf("%s_OK=%d", b->slots[i], v->ok[i]);
                owned[n_owned++] = strdup_printf("%s_TRY=%d", b->slots[i], v->tried[i]);
                owned[n_owned++] = strdup_printf("%s_PENDING=%d", b->slots[i], v->pending[i]);
                for (size_t k = n_owned - 3; k < n_owned; k++) {
                        if (!owned[k]) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        args[n++] = owned[k];
                }
        }
        args[n] = NULL;
        r = run_editenv(b, tmp, args, NULL, err);
        if (r < 0)
                goto fail;

        /* grub-editenv rewrote the copy through its own descriptor; sync it, then swap it in. */
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, target) < 0) {
                r = upk_err(err, UPK_ERR_IO, -errno, "grub backend: cannot replace %s: %m", target);
                goto fail;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void)fsync(dfd);
        for (size_t k = 0; k < n_owned; k++)
                free(owned[k]);
        return 0;
fail:
        (void)unlink(tmp);
        for (size_t k = 0; k < n_owned; k++)
                free(owned[k]);
        return r;
}

static int grub_init(BootBackend *b, const Config *c, UpkErr *err)
{
        _cleanup_free_ char *dir = NULL;
        const char *path = isempty(c->boot_grubenv) ? "/boot/grub/grubenv" : c->boot_grubenv;
        const char *slash = strrchr(path, '/');
        struct stat st;

        if (!process_find_program("grub-editenv"))
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT,
                               "[boot] backend = grub needs grub-editenv (grub-common): not found in PATH");
        if (slash && !slash[1])
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "[boot] grubenv: %s names a folder, not a file",
                               path);
        dir = path_dirname(path);
        if (!dir)
                return upk_err_oom(err);
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT,
                               "[boot] grubenv: %s: its folder %s does not exist", path, dir);
        b->path = strdup(path);
        return b->path ? 0 : -ENOMEM;
}

typedef enum { OP_BAD, OP_TRY, OP_GOOD } GrubOp;

static int grub_update(BootBackend *b, size_t slot, GrubOp op, UpkErr *err)
{
        GrubVars v;
        int r;

        r = grub_load(b, &v, err);
        if (r < 0)
                return r;
        switch (op) {
        case OP_BAD:
                v.ok[slot] = false;
                v.tried[slot] = false;
                v.pending[slot] = false;
                boot_order_move_back(v.order, &v.n_order, slot);
                break;
        case OP_TRY:
                v.ok[slot] = true;
                v.tried[slot] = false;
                v.pending[slot] = true;
                boot_order_move_front(v.order, &v.n_order, slot);
                break;
        case OP_GOOD:
                v.ok[slot] = true;
                v.tried[slot] = false;
                v.pending[slot] = false;
                boot_order_move_front(v.order, &v.n_order, slot);
                break;
        }
        return grub_store(b, &v, err);
}

static int grub_mark_bad(BootBackend *b, size_t slot, UpkErr *err)
{
        return grub_update(b, slot, OP_BAD, err);
}

static int grub_set_try(BootBackend *b, size_t slot, UpkErr *err)
{
        return grub_update(b, slot, OP_TRY, err);
}

static int grub_mark_good(BootBackend *b, size_t slot, UpkErr *err)
{
        return grub_update(b, slot, OP_GOOD, err);
}

static int grub_get_primary(BootBackend *b, size_t *ret, UpkErr *err)
{
        GrubVars v;
        int r;

        r = grub_load(b, &v, err);
        if (r < 0)
                return r;
        /* What upkeep.cfg boots next: the first with OK=1 and TRY=0; else (every good slot was booted
         * without a confirmation since) the first with OK=1 that is not an unconfirmed try. */
        for (size_t k = 0; k < v.n_order; k++)
                if (v.ok[v.order[k]] && !v.tried[v.order[k]]) {
                        *ret = v.order[k];
                        return 0;
                }
        for (size_t k = 0; k < v.n_order; k++)
                if (v.ok[v.order[k]] && !v.pending[v.order[k]]) {
                        *ret = v.order[k];
                        return 0;
                }
        return upk_err(err, UPK_ERR_IO, -ENOENT, "%s: no bootable slot: no slot in ORDER has <slot>_OK=1",
                       b->path);
}

static int grub_get_state(BootBackend *b, size_t slot, SlotState *ret, UpkErr *err)
{
        bool in_order = false;
        GrubVars v;
        int r;

        r = grub_load(b, &v, err);
        if (r < 0)
                return r;
        for (size_t k = 0; k < v.n_order; k++)
                if (v.order[k] == slot)
                        in_order = true;
        if (v.pending[slot])
                *ret = SLOT_STATE_TRY;
        else if (!v.ok[slot] || !in_order)
                *ret = SLOT_STATE_BAD;
        else
                *ret = SLOT_STATE_GOOD;
        return 0;
}

static int grub_get_current(BootBackend *b, size_t *ret, UpkErr *err)
{
        return upk_err(
                err, UPK_ERR_IO, -ENODATA,
                "grub backend: the grubenv does not record the booted slot (use the kernel command line)");
}

const BootOps boot_grub_ops = {
        .init = grub_init,
        .mark_bad = grub_mark_bad,
        .set_try = grub_set_try,
        .mark_good = grub_mark_good,
        .get_primary = grub_get_primary,
        .get_state = grub_get_state,
        .get_current = grub_get_current,
};
