/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Scope cleanup for libarchive handles: _cleanup_(archive_read_freep) and _cleanup_(archive_write_freep)
 * free a reader or a writer when the pointer is not NULL. */

#include <archive.h>
#include <archive_entry.h>

#include "util.h"

static inline void archive_read_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}

static inline void archive_write_freep(struct archive **a)
{
        if (*a)
                archive_write_free(*a);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive_entry *, archive_entry_free);
