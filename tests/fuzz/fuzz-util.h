/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* For targets whose parser reads a file: the input written to a file in a private temporary folder. */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fileio.h"
#include "util.h"

static char fuzz_dir_path[64];

static inline int fuzz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

static inline void fuzz_dir_cleanup(void)
{
        (void)nftw(fuzz_dir_path, fuzz_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static inline const char *fuzz_dir(void)
{
        if (!fuzz_dir_path[0]) {
                snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "/tmp/upkeep-fuzz-XXXXXX");
                if (!mkdtemp(fuzz_dir_path))
                        abort();
                atexit(fuzz_dir_cleanup);
        }
        return fuzz_dir_path;
}

/* Write the input to DIR/NAME (replacing it) and return the path (static buffer). */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
        static char path[128];
        snprintf(path, sizeof(path), "%s/%s", fuzz_dir(), name);
        if (write_file_atomic(fuzz_dir(), name, data, size, 0644) < 0)
                abort();
        return path;
}
