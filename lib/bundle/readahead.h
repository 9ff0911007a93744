/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Read-ahead: a thread that reads a file descriptor into a few fixed blocks while the caller works on the
 * previous ones, handed out in place (a BundleNextFunc). So the read system calls run on the other core
 * than, say, the installer's hashing. Memory is fixed: READAHEAD_BLOCKS x READAHEAD_BLOCK_SIZE bytes.
 *
 * One reader thread at a time calls readahead_next(); readahead_free() may be called at any point from
 * that thread. It waits for a read() under way, so the fd should be a regular file: a pipe or socket
 * with nothing to read would keep it waiting. */

#include "util.h"

#define READAHEAD_BLOCKS     3
#define READAHEAD_BLOCK_SIZE (256u * 1024u)

typedef struct ReadAhead ReadAhead;

/* `fd` stays the caller's and must stay open until readahead_free(). */
int readahead_new(int fd, ReadAhead **ret);
ReadAhead *readahead_free(ReadAhead *ra);
DEFINE_TRIVIAL_CLEANUP_FUNC(ReadAhead *, readahead_free);

/* The next block in place, valid until the next call (which gives it back): its length, 0 at the end of
 * the file, or -errno of the failed read (then always the same). */
ssize_t readahead_next(void *userdata, const void **ret_buf);
