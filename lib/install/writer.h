/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A writer thread between the bundle reader and a payload handler. The caller lends it each block
 * (writer_lend()), hashes the block meanwhile (bundle_hash_pending(), see bundle_set_deferred_hashing())
 * and waits only until the thread has copied it into a small queue (writer_release()); the thread then
 * writes the queue to the handler while the caller reads on. So reading, hashing, copying and writing
 * overlap on two cores, and memory stays flat whatever the payload size (WRITER_SLOTS x
 * WRITER_SLOT_SIZE bytes). The handler's other steps (begin, finish, commit, rollback) stay with the
 * caller and are only called after writer_drain(), so a handler is never called from two threads at
 * once. */

#include "error.h"
#include "handler.h"

#define WRITER_SLOTS     3
#define WRITER_SLOT_SIZE (256u * 1024u)

typedef struct Writer Writer;

int writer_new(Writer **ret);
/* Stops the thread (dropping what is still queued; a block being written is finished) and frees. */
Writer *writer_free(Writer *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Writer *, writer_free);

/* The handler that the following blocks go to; only while drained. */
void writer_set_handler(Writer *w, Handler *h);
/* Lend `buf` to the thread and return at once; it must stay valid and unchanged until
 * writer_release(). Fails with the handler's first error. */
int writer_lend(Writer *w, const void *buf, size_t len, UpkErr *err);
/* For a caller with nothing to do meanwhile: copy `buf` into the queue on the calling thread, waiting
 * only for free room (not for the thread's current write), and return. Not while a block is lent. */
int writer_push(Writer *w, const void *buf, size_t len, UpkErr *err);
/* Wait until the lent block is copied into the queue: the caller may reuse its buffer. */
int writer_release(Writer *w, UpkErr *err);
/* Wait until everything queued was written; the handler's first error, if any. */
int writer_drain(Writer *w, UpkErr *err);
/* Bytes the handlers accepted so far. */
uint64_t writer_written(Writer *w);
/* Test hook: after exactly `n` bytes in all, the process kills itself (crash-consistency tests). */
void writer_crash_after(Writer *w, uint64_t n);
