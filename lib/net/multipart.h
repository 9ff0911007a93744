/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A streaming parser for multipart/byteranges bodies (RFC 9110 section 14.6, the syntax of RFC 2046
 * section 5.1.1), the answer of a server to a request for several byte ranges:
 *
 *   [preamble CRLF] "--" boundary [padding] CRLF
 *   header lines, each "Name: value" CRLF (Content-Range required, Content-Type and others ignored)
 *   CRLF
 *   the part's bytes, exactly as many as its Content-Range says
 *   CRLF "--" boundary ...                              the next part, or
 *   CRLF "--" boundary "--" [epilogue]                  the end
 *
 * The body is fed in pieces of any size; the parser calls back for the start of each part, for the part's
 * bytes with their offsets in the file, and for the closing delimiter. It keeps nothing of a part but its
 * header lines (at most MULTIPART_HEADERS_MAX bytes).
 *
 * Errors: UpkErr kind UPK_ERR_NETWORK, -EBADMSG for a body that is not well-formed (message: what and
 * where, as an offset in the body), -E2BIG for a preamble, header block or epilogue over its limit; or
 * whatever a callback returned. After an error the parser refuses every further call. */

#include "error.h"

#define MULTIPART_BOUNDARY_MAX 70           /* RFC 2046: 1 to 70 characters */
#define MULTIPART_HEADERS_MAX  1024         /* the header lines of one part together, CRLFs included */
#define MULTIPART_PREAMBLE_MAX (4u * 1024u) /* bytes before the first delimiter */
#define MULTIPART_EPILOGUE_MAX (4u * 1024u) /* bytes after the closing delimiter, ignored */
#define MULTIPART_PADDING_MAX  64           /* spaces and tabs after a boundary */

/* The boundary parameter of a Content-Type "multipart/byteranges; boundary=..." (media type and parameter
 * names in any case, the value a token or a quoted string) into `ret` (`size` >= MULTIPART_BOUNDARY_MAX +
 * 1). -EINVAL unless the media type is multipart/byteranges with exactly one boundary of 1 to 70
 * characters that RFC 2046 allows. */
int multipart_boundary_from_content_type(const char *content_type, char *ret, size_t size);

typedef struct MultipartCallbacks {
        /* A part begins: its Content-Range, `total` UINT64_MAX for "*". */
        int (*part)(uint64_t start, uint64_t end, uint64_t total, void *userdata, UpkErr *err);
        /* Bytes of the current part: file offsets [offset, offset + size), in order, each once. */
        int (*data)(const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err);
        /* The closing delimiter was read (optional). */
        int (*end)(void *userdata, UpkErr *err);
} MultipartCallbacks;

typedef struct MultipartParser MultipartParser;

/* `boundary` as from multipart_boundary_from_content_type() (copied); `cb` is copied. */
int multipart_parser_new(const char *boundary, const MultipartCallbacks *cb, void *userdata,
                         MultipartParser **ret, UpkErr *err);
MultipartParser *multipart_parser_free(MultipartParser *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(MultipartParser *, multipart_parser_free);

/* The next `size` bytes of the body. 0, or a negative errno with `err`. */
int multipart_parser_feed(MultipartParser *p, const void *buf, size_t size, UpkErr *err);
/* The body ended: 0 when the closing delimiter was read, else -EBADMSG (truncated). */
int multipart_parser_finish(MultipartParser *p, UpkErr *err);
/* True once the closing delimiter was read. */
bool multipart_parser_ended(const MultipartParser *p);
