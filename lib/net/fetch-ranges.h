/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Some byte ranges of one file over HTTP, for a delta update: only the parts of a bundle a device does not
 * have. Requests ask for up to FETCH_RANGES_PER_REQUEST ranges each ("Range: bytes=a-b,c-d,..."), one after
 * the other on the same connection. The answers taken:
 *   - 206 multipart/byteranges, its parts in ascending order; a part may cover several ranges asked for
 *     and the gap bytes between them (the server coalesced them): the gap bytes are dropped;
 *   - 206 with one Content-Range that starts at the first byte asked for (the server answered only the
 *     first range, or coalesced all into one): its bytes are taken, and from then on every request asks
 *     for one range, neighbouring ranges less than FETCH_RANGES_MERGE_GAP apart merged into it.
 * Refused, final, UPK_ERR_NETWORK:
 *   - 200 to a ranged request: -EOPNOTSUPP, the server ignores Range requests;
 *   - a Content-Range total other than the file's size, a 200 to If-Range, or another ETag: -ESTALE,
 *     the file changed on the server;
 *   - parts out of order, overlapping what was delivered, outside the ranges asked for, not starting at
 *     the first byte still wanted, a malformed multipart body: -EPROTO, the server answered the range
 *     request wrongly.
 * Transient failures retry as any fetch does (fetch.h: retries, backoff, deadline, minimum rate, cancel
 * descriptor, low-speed limit); the next request starts at the first byte not delivered yet. */

#include "fetch.h"

#define FETCH_RANGES_MAX         (1024u * 1024u) /* ranges of one stream */
#define FETCH_RANGES_PER_REQUEST 128
#define FETCH_RANGES_HEADER_MAX  4000          /* the Range header's value, at most */
#define FETCH_RANGES_MERGE_GAP   (16u * 1024u) /* single-range requests: gaps below this are fetched */

typedef struct FetchRange {
        uint64_t offset, length;
} FetchRange;

typedef struct FetchRangesStats {
        uint64_t wire_bytes; /* body bytes received, multipart headers and boundaries and gap bytes included
                              */
        uint64_t delivered;  /* range bytes handed out */
        unsigned requests;   /* HTTP requests made */
        unsigned retries;
        bool multipart;    /* the server answered at least one request with multipart/byteranges */
        bool single_range; /* it answered a request for several ranges with one range: later requests ask for
                            * one (merged) range at a time */
} FetchRangesStats;

/* The bytes of `ranges` (sorted, not overlapping, each length > 0, all below `total`), one after the other,
 * as a FetchStream: a worker reads them with fetch_stream_next() or fetch_stream_read() as it reads a
 * whole file (fetch_stream_set_check(), fetch_stream_cancel() and fetch_stream_free() work the same).
 * `total` is the file's size as known from an earlier answer; `validator` (a strong ETag; NULL or "": none)
 * goes out as If-Range, so that a changed file is noticed. `ranges` is copied. Fails with UPK_ERR_CONFIG
 * for ranges that break these rules, more than FETCH_RANGES_MAX of them, or what fetch_new() refuses. */
int fetch_stream_new_ranges(FetchEngine *e, const char *url, uint64_t total, const char *validator,
                            const FetchRange *ranges, size_t n_ranges, const FetchOptions *opts,
                            size_t buffer_size, FetchStream **ret, UpkErr *err);
/* Loop thread: the counters of a stream made by fetch_stream_new_ranges() (zeros for any other). */
void fetch_stream_get_ranges_stats(FetchStream *s, FetchRangesStats *ret);

/* Blocking, with a private loop (as fetch_to_memory()): bytes [offset, offset + length) of `url`, length at
 * most FETCH_MEMORY_MAX, into a new buffer; the file's size from Content-Range (UINT64_MAX if the server
 * gave "*") and its ETag ("" if none or longer than FETCH_ETAG_MAX - 1) into *ret_total and ret_etag
 * (FETCH_ETAG_MAX bytes; both optional). A server that answers 200 fails with -EOPNOTSUPP as soon as its
 * status is known, before its body. A file shorter than offset + length fails with -ERANGE, unless
 * `ret_length` is given and the file ends after `offset`: then its bytes up to its end are the answer
 * (as HTTP serves a range that runs past the end), their count in *ret_length. The counters go to
 * *ret_stats (optional), also on failure. */
int fetch_range_to_memory(const char *url, uint64_t offset, uint64_t length, const FetchOptions *opts,
                          void **ret, uint64_t *ret_length, uint64_t *ret_total, char *ret_etag,
                          FetchRangesStats *ret_stats, UpkErr *err);
/* Blocking, with a private loop: the bytes of `ranges` (as for fetch_stream_new_ranges()) one after the
 * other into `buf`, whose `size` must be their sum. The same answers are taken and refused. */
int fetch_ranges_to_memory(const char *url, uint64_t total, const char *validator, const FetchRange *ranges,
                           size_t n_ranges, const FetchOptions *opts, void *buf, size_t size,
                           FetchRangesStats *ret_stats, UpkErr *err);
