/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef UPKEEP_HANDLER_H
#define UPKEEP_HANDLER_H

/* The payload handler interface of upkeep, for plugins.
 *
 * A plugin is a shared object in the handlers folder (/usr/lib/upkeep/handlers/NAME.so) that exports
 * one symbol, `upkeep_handler`, of type `const struct upkeep_handler`. A manifest payload whose
 * "handler" is NAME is installed through it. upkeep loads it with dlopen(RTLD_NOW | RTLD_LOCAL) and
 * refuses a plugin whose abi_version differs from the UPKEEP_HANDLER_ABI_VERSION it was built with, or
 * whose table lacks any of the five functions.
 *
 * Life of one payload:
 *   begin()   once, before the first byte; gets the payload's description. The payload and its
 *             strings live only for the duration of the call: copy what you need. A begin() that
 *             fails must leave nothing behind; neither commit() nor rollback() follows it;
 *   write()   for each block of the payload's bytes (decompressed), in order; the blocks add up to
 *             `size` bytes (upkeep refuses more before calling write());
 *   finish()  after the last byte, once the payload's size and sha256 have checked out: make the
 *             bytes durable (fsync), but do not make them live yet;
 *   commit()  after every payload of the bundle finished: make them live, if the handler has a
 *             notion of that (atomic renames, ...);
 *   rollback() instead of commit() when anything failed or was cancelled after begin(), also after a
 *             failed write() or finish(): undo what can be undone.
 * Exactly one of commit() and rollback() ends every begun payload, and frees the state: commit()
 * frees it whether it succeeds or fails, and is never followed by rollback().
 *
 * Return 0 on success or a negative errno; on failure write a sentence into msg (msg_size bytes; keep
 * it NUL-terminated, snprintf does) naming what failed. upkeep prefixes it with the payload's and the
 * handler's names. Calls are made from one thread, but not necessarily the thread that loaded the
 * plugin. A handler must not print to stdout, must not change process-wide state (signal dispositions,
 * the current folder, the umask) and must not block for long outside write(), finish() and commit(). */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UPKEEP_HANDLER_ABI_VERSION 1u

/* The value of upkeep_payload.size when the payload is compressed and its manifest entry gives no
 * installed_size: the number of bytes is known only at the end. */
#define UPKEEP_PAYLOAD_SIZE_UNKNOWN UINT64_MAX

struct upkeep_payload {
        uint32_t struct_size;    /* sizeof(struct upkeep_payload) of the caller */
        const char *name;        /* the payload's name in the manifest */
        const char *handler;     /* the handler name as written in the manifest */
        const char *slot_class;  /* NULL for payloads with a target */
        const char *slot_name;   /* "A" or "B": the slot being written; NULL with a target */
        const char *destination; /* the slot's device (block device, file or folder), or the target path */
        uint64_t size;           /* bytes that write() will receive in all, or UPKEEP_PAYLOAD_SIZE_UNKNOWN */
        const char *sha256;      /* hex digest of the payload as stored in the bundle */
        const char *version;     /* the bundle's version */
        const char *compatible;  /* the bundle's compatible string */
        /* Added later in ABI version 1: read it only when struct_size covers it. */
        const char *fstype; /* the slot's file system type ([slot.*] fstype=) for handlers that make
                             * one, NULL when not configured */
};

struct upkeep_handler {
        uint32_t abi_version; /* UPKEEP_HANDLER_ABI_VERSION */
        const char *name;
        int (*begin)(const struct upkeep_payload *payload, void **ret_state, char *msg, size_t msg_size);
        int (*write)(void *state, const void *buf, size_t len, char *msg, size_t msg_size);
        int (*finish)(void *state, char *msg, size_t msg_size);
        int (*commit)(void *state, char *msg, size_t msg_size);
        void (*rollback)(void *state);
};

/* The one symbol a plugin defines and exports. Declared here so that it has C linkage and external
 * linkage in a plugin written in C++ too (where a const object at namespace scope is otherwise local to
 * its file and its name mangled). */
__attribute__((visibility("default"))) extern const struct upkeep_handler upkeep_handler;

#ifdef __cplusplus
}
#endif

#endif
