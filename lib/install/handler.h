/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Payload handlers: the built-in ones (raw, archive, file, exec:NAME) and plugins loaded from the
 * handlers folder. One Handler object installs one payload; see lib/include/upkeep/handler.h for the
 * life of a payload (begin, write..., finish, then commit or rollback) and man/upkeep-handlers.7.scd
 * for what each handler does. */

#include "error.h"
#include "upkeep/handler.h"

#define HANDLER_MSG_MAX 512

typedef struct Handler Handler;

/* Find the handler for a manifest "handler" value: raw, archive, file, exec:NAME (the executable
 * HANDLERS_DIR/NAME, NAME a plain file name) or a plugin HANDLERS_DIR/NAME.so (dlopen'ed here, so only
 * call this for a manifest whose signature verified). handlers_dir NULL means the build's
 * UPK_HANDLERS_DIR (/usr/lib/upkeep/handlers with --prefix=/usr). A missing program or plugin, a plugin
 * with another ABI version or an incomplete table fails (UPK_ERR_CONFIG) with a message naming the file
 * and the reason. */
int handler_open(const char *name, const char *handlers_dir, Handler **ret, UpkErr *err);
/* Frees; a begun payload that saw neither commit nor rollback is rolled back first. */
Handler *handler_free(Handler *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(Handler *, handler_free);

/* The steps, with errors as UpkErr (kind UPK_ERR_IO) reading "payload \"NAME\": handler HANDLER:
 * reason". The order is enforced (-EINVAL otherwise): begin, write..., finish, commit; rollback at any
 * point after begin. A failed begin ends the Handler (nothing to roll back); a failed write or finish
 * leaves only rollback (or handler_free); a commit ends the payload whether it succeeds or not.
 *
 * handler_begin() copies what it keeps of `p` and sets p->struct_size itself. p->size is the number of
 * bytes write() gets in all (the decompressed size), or UPKEEP_PAYLOAD_SIZE_UNKNOWN: more bytes fail
 * the write with -EFBIG, fewer fail finish with -EBADMSG. Call finish only once the payload's size and
 * sha256 have checked out, commit only once every payload of the bundle has finished. Steps may block
 * (fsync, an exec handler's program, mkfs): call them off the event loop's thread. */
int handler_begin(Handler *h, const struct upkeep_payload *p, UpkErr *err);
int handler_write(Handler *h, const void *buf, size_t len, UpkErr *err);
int handler_finish(Handler *h, UpkErr *err);
int handler_commit(Handler *h, UpkErr *err);
void handler_rollback(Handler *h);
