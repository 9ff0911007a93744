/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A writer thread between the bundle reader and a payload handler, so that reading and hashing
 * the next block overlaps with writing the last one. The caller pushes copies of the blocks into a
 * small bounded queue (WRITER_SLOTS x WRITER_SLOT_SIZE bytes: memory stays flat whatever the payload
 * size); the thread hands them to handler_write() in order. The handler's other steps (begin, finish,
 * commit, rollback) stay with the caller and are only called while the queue is drained, so a
 * handler is never called from two threads at once. */

#include "error.h"
#include "handler.h"

#define WRITER_SLOTS     4
#define WRITER_SLOT_SIZE (256u * 1024u)

typedef struct Writer Writer;

int writer_new(Writer **ret);
/* Stops the thread (dropping what is still queued) and frees. */
Writer *writer_free(Writer *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Writer *, writer_free);

/* The handler that the following pushes go to; only while drained. */
void writer_set_handler(Writer *w, Handler *h);
/* Queue a copy of the bytes; waits while the queue is full. Fails with the handler's first error. */
int writer_push(Writer *w, const void *buf, size_t len, UpkErr *err);
/* Wait until everything queued was written; the handler's first error, if any. */
int writer_drain(Writer *w, UpkErr *err);
/* Bytes the handlers accepted so far. */
uint64_t writer_written(Writer *w);
/* Test hook: after exactly `n` bytes in all, the process kills itself (crash-consistency tests). */
void writer_crash_after(Writer *w, uint64_t n);
