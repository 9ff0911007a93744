/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where a payload with a `target` (no slot class) may write: never onto a configured slot or onto
 * upkeep's own files and folders, and, when [install] allowed-targets is set, only under one of its
 * prefixes. Paths are compared after resolving symbolic links (a target that does not exist yet by its
 * nearest existing folder), and by device and inode, so another name for the same file, a bind mount
 * or another node of the same block device is caught too; so is the whole disk that holds a slot
 * partition (and a partition of a slot that is a whole disk), which sysfs names. */

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fileio.h"
#include "install-internal.h"
#include "path-util.h"

typedef struct Protected {
        const char *path;
        const char *what; /* for the message */
        bool folder;      /* a folder even when it does not exist yet: nothing below it either */
} Protected;

/* `path` with the symbolic links of its existing part resolved; the part that does not exist yet is
 * appended as written. NULL on OOM. */
static char *canonical(const char *path)
{
        _cleanup_free_ char *dir = NULL, *parent = NULL;
        const char *base;
        char *r;

        r = realpath(path, NULL);
        if (r || errno == ENOMEM)
                return r;
        if (streq(path, "/"))
                return strdup("/");
        dir = path_dirname(path);
        if (!dir)
                return NULL;
        parent = canonical(dir);
        if (!parent)
                return NULL;
        base = path_basename(path);
        if (isempty(base) || streq(base, "."))
                return TAKE_PTR(parent);
        return path_join(parent, base);
}

/* `path` is `prefix` or below it (both canonical). */
static bool path_under(const char *path, const char *prefix)
{
        size_t n = strlen(prefix);

        if (streq(prefix, "/"))
                return true;
        return strneq(path, prefix, n) && (path[n] == 0 || path[n] == '/');
}

int install_block_whole_disk(const char *sysfs, dev_t dev, dev_t *ret)
{
        _cleanup_free_ char *part =
                strdup_printf("%s/dev/block/%u:%u/partition", sysfs, major(dev), minor(dev));
        _cleanup_free_ char *disk =
                strdup_printf("%s/dev/block/%u:%u/../dev", sysfs, major(dev), minor(dev));
        _cleanup_free_ char *text = NULL;
        unsigned maj, min;
        int r;

        *ret = 0;
        if (!part || !disk)
                return -ENOMEM;
        if (access(part, F_OK) < 0)
                return 0; /* not a partition (or no sysfs): nothing above it */
        /* /sys/dev/block/M:N links to .../block/DISK/PART: the disk's "dev" is one folder up */
        r = read_full_file(disk, 64, &text, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : 0;
        if (sscanf(text, "%u:%u", &maj, &min) != 2)
                return 0;
        *ret = makedev(maj, min);
        return 0;
}

/* Where sysfs is: /sys, or in a test build UPKEEP_TEST_SYSFS (a fake tree). */
static const char *sysfs_root(void)
{
#if HAVE_TEST_HOOKS
        const char *e = secure_getenv("UPKEEP_TEST_SYSFS");
        if (e)
                return e;
#endif
        return "/sys";
}

/* One block device holds the other: a whole disk and one of its partitions. */
static bool block_contains(dev_t disk, dev_t part)
{
        dev_t whole;

        return install_block_whole_disk(sysfs_root(), part, &whole) >= 0 && whole != 0 && whole == disk;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
        if (a->st_dev == b->st_dev && a->st_ino == b->st_ino)
                return true;
        if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
                /* two nodes for one disk or partition, or the disk that holds the other */
                return a->st_rdev == b->st_rdev || block_contains(a->st_rdev, b->st_rdev) ||
                       block_contains(b->st_rdev, a->st_rdev);
        /* two nodes for one character device */
        return S_ISCHR(a->st_mode) && S_ISCHR(b->st_mode) && a->st_rdev == b->st_rdev;
}

/* Whether the (canonical) target is, or lies in, `p`. */
static int collides(const char *target, const Protected *p, bool *ret)
{
        _cleanup_free_ char *pc = canonical(p->path), *walk = NULL;
        struct stat pst, st;
        bool folder;

        *ret = false;
        if (!pc)
                return -ENOMEM;
        if (stat(p->path, &pst) < 0) {
                /* Not there (yet): only its path can be compared. */
                *ret = p->folder ? path_under(target, pc) : streq(target, pc);
                return 0;
        }
        folder = p->folder || S_ISDIR(pst.st_mode);
        if (folder ? path_under(target, pc) : streq(target, pc)) {
                *ret = true;
                return 0;
        }
        /* The target itself, then (for a folder) every folder above it that exists. */
        walk = strdup(target);
        if (!walk)
                return -ENOMEM;
        for (;;) {
                char *parent;

                if (stat(walk, &st) >= 0 && same_file(&st, &pst)) {
                        *ret = true;
                        return 0;
                }
                if (!folder || streq(walk, "/"))
                        return 0;
                parent = path_dirname(walk);
                if (!parent)
                        return -ENOMEM;
                free(walk);
                walk = parent;
        }
}

static int check_allowed(const Config *c, const char *payload, const char *target, const char *tc,
                         UpkErr *err)
{
        const char *p = c->allowed_targets;

        if (!p)
                return 0;
        for (p += strspn(p, " \t"); *p; p += strspn(p, " \t")) {
                size_t len = strcspn(p, " \t");
                _cleanup_free_ char *prefix = strndup(p, len), *pc = NULL;

                if (!prefix || !(pc = canonical(prefix)))
                        return upk_err_oom(err);
                if (path_under(tc, pc))
                        return 0;
                p += len;
        }
        return upk_err(err, UPK_ERR_COMPATIBLE, -EPERM,
                       "payload \"%s\": target %s is not under [install] allowed-targets (%s); nothing was "
                       "written",
                       payload, target, c->allowed_targets);
}

static void free_names(char ***names)
{
        for (size_t i = 0; *names && (*names)[i]; i++)
                free((*names)[i]);
        free(*names);
}

int install_check_target(const Config *c, const char *payload, const char *target, UpkErr *err)
{
        _cleanup_free_ char *tc = canonical(target), *conf_d = NULL, *conf_dir = NULL;
        _cleanup_free_ Protected *list = calloc(c->n_slots + 12, sizeof(Protected));
        __attribute__((cleanup(free_names))) char **slot_names = calloc(c->n_slots + 1, sizeof(char *));
        size_t n = 0;
        int r;

        if (!tc || !list || !slot_names)
                return upk_err_oom(err);
        if (c->config_path) {
                conf_dir = path_dirname(c->config_path);
                conf_d = conf_dir ? path_join(conf_dir, "conf.d") : NULL;
                if (!conf_d)
                        return upk_err_oom(err);
        }
        for (size_t i = 0; i < c->n_slots; i++) {
                slot_names[i] = strdup_printf("slot %s.%s", c->slots[i].class, c->slots[i].name);
                if (!slot_names[i])
                        return upk_err_oom(err);
                list[n++] = (Protected){ c->slots[i].device, slot_names[i] };
        }
        list[n++] = (Protected){ c->data_dir, "upkeep's data folder ([device] data-dir)", true };
        list[n++] = (Protected){ c->boot_state_file, "the boot state file ([boot] state-file)" };
        if (c->boot_backend == BOOT_BACKEND_GRUB)
                list[n++] = (Protected){ c->boot_grubenv, "the grubenv ([boot] grubenv)" };
        list[n++] = (Protected){ c->boot_script, "the boot script ([boot] script)" };
        list[n++] = (Protected){ c->config_path, "upkeep's configuration file" };
        list[n++] = (Protected){ conf_d, "upkeep's configuration folder conf.d", true };
        list[n++] = (Protected){ c->keyring, "the keyring ([keyring] path)" };
        list[n++] = (Protected){ c->crl, "the CRL ([keyring] crl)" };
        list[n++] = (Protected){ c->handlers_dir, "the handlers folder ([install] handlers-dir)", true };
        list[n++] = (Protected){ c->health_dir, "the health checks folder ([health] dir)", true };

        for (size_t i = 0; i < n; i++) {
                bool hit;

                if (isempty(list[i].path))
                        continue;
                r = collides(tc, &list[i], &hit);
                if (r < 0)
                        return upk_err_oom(err);
                if (hit)
                        return upk_err(err, UPK_ERR_COMPATIBLE, -EPERM,
                                       "payload \"%s\": target %s is or lies in %s (%s): a payload may not "
                                       "write there; nothing was written",
                                       payload, target, list[i].what, list[i].path);
        }
        return check_allowed(c, payload, target, tc, err);
}
