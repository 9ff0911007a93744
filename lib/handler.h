/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Payload handlers: the built-in ones (raw, archive, file, exec:NAME) and plugins loaded from the
 * handlers folder. One Handler object installs one payload; see lib/include/upkeep/handler.h for the
 * life of a payload (begin, write..., finish, then commit or rollback). */

#include "error.h"
#include "upkeep/handler.h"

#define HANDLER_MSG_MAX 512

typedef struct Handler Handler;

/* Find the handler for a manifest "handler" value: raw, archive, file, exec:NAME (the executable
 * HANDLERS_DIR/NAME) or a plugin HANDLERS_DIR/NAME.so. A missing program or plugin, or a plugin with
 * another ABI version, fails (UPK_ERR_CONFIG) with a message naming the file and the reason. */
int handler_open(const char *name, const char *handlers_dir, Handler **ret, UpkErr *err);
/* Frees; a begun payload that saw neither commit nor rollback is rolled back first. */
Handler *handler_free(Handler *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(Handler *, handler_free);

/* The steps, with errors as UpkErr (kind UPK_ERR_IO) prefixed by the payload's name. */
int handler_begin(Handler *h, const struct upkeep_payload *p, UpkErr *err);
int handler_write(Handler *h, const void *buf, size_t len, UpkErr *err);
int handler_finish(Handler *h, UpkErr *err);
int handler_commit(Handler *h, UpkErr *err);
void handler_rollback(Handler *h);
