/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The booted slots' block tables made ahead of a delta (install_delta_prepare_tables()): the daemon runs
 * this in the background once the booted slot is confirmed, so that the first delta install after a boot
 * finds them in the data folder instead of hashing whole slots while the user waits. */
#include "install-internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "block-table.h"
#include "chunk-index.h"

static double monotonic_sec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What a save killed half way left of table `name`: block_table_save() writes ".#NAME.XXXXXX" and renames
 * it, so a kill (the table is only a cache; the daemon may be stopped any time) leaves such a file. A
 * table can be tens of MiB: they must not pile up. */
static void remove_stale_temporaries(const char *dir, const char *name)
{
        _cleanup_free_ char *prefix = strdup_printf(".#%s.", name);
        DIR *d;
        struct dirent *de;

        if (!prefix)
                return;
        d = opendir(dir);
        if (!d)
                return;
        while ((de = readdir(d)))
                if (strneq(de->d_name, prefix, strlen(prefix)))
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

/* Slot `s`, one of the booted slots: its table made unless it is there. 1 when computed, 0 when it was
 * there or the slot holds nothing to reuse. */
static int prepare_slot(const Config *c, const SlotConfig *s, bool (*cancelled)(void *userdata),
                        void *userdata, InstallPrepareStats *st, UpkErr *err)
{
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        _cleanup_free_ char *name = install_delta_table_name(s);
        _cleanup_close_ int fd = -EBADF;
        UpkErr save_err = {};
        uint64_t size;
        bool computed;
        double start;
        int r;

        if (!name)
                return upk_err_oom(err);
        /* What an install would not read either (install_bundle_delta() plans such a slot's payload to be
         * fetched whole): nothing to prepare. */
        if (install_delta_open_slot(s, &fd, &size) < 0)
                return 0;
        remove_stale_temporaries(c->data_dir, name);
        start = monotonic_sec();
        r = install_delta_slot_table(c, s, fd, size, BLOCK_SIZE_DEFAULT, cancelled, userdata, &t, &computed,
                                     &save_err, err);
        if (r < 0) {
                if (r != -ECANCELED)
                        (void)upk_err_prefix(err, "slot %s.%s", s->class, s->name);
                return r;
        }
        if (!computed) {
                st->cached++;
                return 0;
        }
        /* Made for nothing (and made again at every start) unless it is kept: the caller must hear of it. */
        if (save_err.code < 0) {
                if (err)
                        *err = save_err;
                (void)upk_err_prefix(err, "slot %s.%s: its block table cannot be kept", s->class, s->name);
                return save_err.code;
        }
        st->computed++;
        st->blocks += size / BLOCK_SIZE_DEFAULT + (size % BLOCK_SIZE_DEFAULT != 0);
        st->seconds += monotonic_sec() - start;
        snprintf(st->slots + strlen(st->slots), sizeof(st->slots) - strlen(st->slots), "%s%s.%s",
                 st->slots[0] ? ", " : "", s->class, s->name);
        return 1;
}

int install_delta_prepare_tables(const Config *c, const char *booted, bool (*cancelled)(void *userdata),
                                 void *userdata, InstallPrepareStats *ret, UpkErr *err)
{
        InstallPrepareStats st = {};
        UpkErr first = {};
        int result = 0;

        if (!c->delta || !booted) {
                *ret = st;
                return 0;
        }
        for (size_t k = 0; k < c->n_slots; k++) {
                const SlotConfig *s = &c->slots[k];
                UpkErr e = {};
                bool seen = false;
                int r;

                if (!streq(s->bootname, booted))
                        continue;
                /* One slot per class: the one a payload of that class reuses (the first, as
                 * install_bundle_delta() picks it). */
                for (size_t j = 0; j < k && !seen; j++)
                        seen = streq(c->slots[j].class, s->class) && streq(c->slots[j].bootname, booted);
                if (seen)
                        continue;
                r = prepare_slot(c, s, cancelled, userdata, &st, &e);
                if (r == -ECANCELED) {
                        if (err)
                                *err = e;
                        return r;
                }
                if (r < 0 && result >= 0) {
                        result = r;
                        first = e;
                }
        }
        if (result < 0) {
                if (err)
                        *err = first;
                return result;
        }
        *ret = st;
        return 0;
}
