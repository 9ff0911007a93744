/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ranges of one file: a Fetch in range mode (fetch.c keeps the transfer and its retries) whose body
 * bytes go through the multipart parser, or straight, to the range bytes wanted; those go into a
 * FetchStream's ring (fetch-stream.c) or into memory. */

#include "fetch-ranges.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "fetch-internal.h"
#include "multipart.h"

struct FetchRanges {
        char *url;
        FetchRange *ranges;
        size_t n;
        uint64_t total; /* the file's size; UINT64_MAX while unknown (to memory, before the first answer) */
        bool up_to_end; /* one range, to memory: a file that ends inside it gives the bytes up to its end */
        char validator[FETCH_ETAG_MAX];
        char etag[FETCH_ETAG_MAX]; /* of the last answer */

        /* where the bytes go: a stream's ring, or memory */
        FetchStream *stream;
        uint8_t *mem;

        size_t idx;    /* the first range not delivered completely (n: all done) */
        uint64_t want; /* the next byte wanted, inside ranges[idx] */
        uint64_t delivered;

        /* the current request */
        char header[FETCH_RANGES_HEADER_MAX + 48];
        size_t asked;              /* ranges in it */
        uint64_t asked_first;      /* its first byte ... */
        uint64_t asked_last;       /* ... and its last */
        uint64_t delivered_before; /* delivered when it was made */
        /* the current response */
        MultipartParser *parser; /* a multipart answer */
        bool single;             /* a single-range answer ... */
        uint64_t pos, end;       /* ... at file offset pos, its last byte end */
        bool callback_failed;    /* the error came from our checks, not from the parser */

        bool multipart, single_range;
        unsigned requests, retries;
        uint64_t wire_bytes;
        bool done;
        int r;
        UpkErr err;
};

FetchRanges *fetch_ranges_free(FetchRanges *fr)
{
        if (!fr)
                return NULL;
        multipart_parser_free(fr->parser);
        free(fr->url);
        free(fr->ranges);
        free(fr->mem);
        free(fr);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(FetchRanges *, fetch_ranges_free);

static uint64_t range_last(const FetchRange *r)
{
        return r->offset + r->length - 1;
}

/* -EPROTO: "URL: the server answered the range request wrongly: ..." */
static int ranges_wrong(FetchRanges *fr, UpkErr *err, const char *fmt, ...) _printf_(3, 4);
static int ranges_wrong(FetchRanges *fr, UpkErr *err, const char *fmt, ...)
{
        char what[512];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        fr->callback_failed = true;
        return upk_err(err, UPK_ERR_NETWORK, -EPROTO,
                       "%s: the server answered the range request wrongly: %s", fr->url, what);
}

static const char *ranges_request(Fetch *f, void *userdata)
{
        FetchRanges *fr = userdata;
        uint64_t first = fr->want, last = range_last(&fr->ranges[fr->idx]);
        size_t len, j = fr->idx + 1;

        fr->parser = multipart_parser_free(fr->parser);
        fr->single = false;
        fr->callback_failed = false;
        fr->delivered_before = fr->delivered;
        fr->requests++;
        fr->retries = f->stats.retries;
        fr->asked = 1;
        if (fr->single_range) {
                /* One range a request: the neighbours close enough are fetched with their gaps. */
                while (j < fr->n && fr->asked < FETCH_RANGES_PER_REQUEST &&
                       fr->ranges[j].offset - last - 1 < FETCH_RANGES_MERGE_GAP) {
                        last = range_last(&fr->ranges[j]);
                        fr->asked++;
                        j++;
                }
                snprintf(fr->header, sizeof(fr->header), "%" PRIu64 "-%" PRIu64, first, last);
        } else {
                len = (size_t)snprintf(fr->header, sizeof(fr->header), "%" PRIu64 "-%" PRIu64, first, last);
                for (; j < fr->n && fr->asked < FETCH_RANGES_PER_REQUEST; j++) {
                        char one[48];
                        size_t k = (size_t)snprintf(one, sizeof(one), ",%" PRIu64 "-%" PRIu64,
                                                    fr->ranges[j].offset, range_last(&fr->ranges[j]));

                        if (len + k > FETCH_RANGES_HEADER_MAX)
                                break;
                        memcpy(fr->header + len, one, k + 1);
                        len += k;
                        last = range_last(&fr->ranges[j]);
                        fr->asked++;
                }
        }
        fr->asked_first = first;
        fr->asked_last = last;
        return fr->header;
}

/* A part (or the single range) of the answer, [start, end] of a file of `total` bytes: it must start at
 * the first byte still wanted and end within what was asked for. */
static int ranges_check_part(FetchRanges *fr, uint64_t start, uint64_t end, uint64_t total, UpkErr *err)
{
        if (total != UINT64_MAX && fr->total == UINT64_MAX) {
                /* To memory: the first answer says how large the file is. */
                fr->total = total;
                if (fr->up_to_end && fr->n == 1 && fr->ranges[0].offset < total &&
                    range_last(&fr->ranges[0]) >= total) {
                        fr->ranges[0].length = total - fr->ranges[0].offset;
                        if (fr->asked_last >= total)
                                fr->asked_last = total - 1;
                }
                if (range_last(&fr->ranges[fr->n - 1]) >= total) {
                        fr->callback_failed = true;
                        return upk_err(err, UPK_ERR_NETWORK, -ERANGE,
                                       "%s: bytes %" PRIu64 "-%" PRIu64 " asked for, the file has %" PRIu64
                                       " bytes",
                                       fr->url, fr->ranges[0].offset, range_last(&fr->ranges[fr->n - 1]),
                                       total);
                }
        }
        if (total != UINT64_MAX && total != fr->total) {
                fr->callback_failed = true;
                return upk_err(err, UPK_ERR_NETWORK, -ESTALE,
                               "%s: the file changed on the server: its size is %" PRIu64
                               " bytes (Content-Range), not %" PRIu64,
                               fr->url, total, fr->total);
        }
        if (start < fr->asked_first || end > fr->asked_last)
                return ranges_wrong(fr, err,
                                    "a part for bytes %" PRIu64 "-%" PRIu64
                                    " is outside the ranges asked for (bytes %" PRIu64 "-%" PRIu64 ")",
                                    start, end, fr->asked_first, fr->asked_last);
        if (start < fr->want)
                return ranges_wrong(fr, err,
                                    "a part for bytes %" PRIu64 "-%" PRIu64
                                    " overlaps the bytes already delivered (up to byte %" PRIu64 ")",
                                    start, end, fr->want);
        if (start > fr->want)
                return ranges_wrong(fr, err,
                                    "a part for bytes %" PRIu64 "-%" PRIu64
                                    " does not start at byte %" PRIu64
                                    ", the first still wanted (parts out of order or missing)",
                                    start, end, fr->want);
        return 0;
}

/* Bytes of the answer at file offset `offset`: those of the ranges go out, the gaps between them are
 * dropped. */
static int ranges_take(FetchRanges *fr, const uint8_t *buf, size_t size, uint64_t offset, UpkErr *err)
{
        while (size > 0 && fr->idx < fr->n) {
                const FetchRange *r = &fr->ranges[fr->idx];
                size_t n;

                if (offset < fr->want) {
                        n = fr->want - offset < size ? (size_t)(fr->want - offset) : size;
                } else if (offset > fr->want) {
                        return ranges_wrong(fr, err, "bytes from %" PRIu64 " skip byte %" PRIu64, offset,
                                            fr->want);
                } else {
                        n = r->offset + r->length - fr->want < size
                                    ? (size_t)(r->offset + r->length - fr->want)
                                    : size;
                        if (fr->stream)
                                fetch_stream_append(fr->stream, buf, n);
                        else
                                memcpy(fr->mem + fr->delivered, buf, n);
                        fr->want += n;
                        fr->delivered += n;
                        if (fr->want == r->offset + r->length) {
                                fr->idx++;
                                fr->want = fr->idx < fr->n ? fr->ranges[fr->idx].offset : UINT64_MAX;
                        }
                }
                buf += n;
                offset += n;
                size -= n;
        }
        return 0;
}

static int on_part(uint64_t start, uint64_t end, uint64_t total, void *userdata, UpkErr *err)
{
        return ranges_check_part(userdata, start, end, total, err);
}

static int on_part_data(const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        return ranges_take(userdata, buf, size, offset, err);
}

static const MultipartCallbacks part_callbacks = {
        .part = on_part,
        .data = on_part_data,
};

static int ranges_response(Fetch *f, long status, void *userdata, UpkErr *err)
{
        FetchRanges *fr = userdata;
        const char *etag = fetch_response_header(f, "ETag"), *ct, *cr;
        uint64_t start, end, total;
        int r;

        fr->etag[0] = 0;
        if (etag && strlen(etag) < sizeof(fr->etag))
                memcpy(fr->etag, etag, strlen(etag) + 1);
        if (status == 200) {
                if (fr->validator[0] && !streq(fr->etag, fr->validator))
                        return upk_err(
                                err, UPK_ERR_NETWORK, -ESTALE,
                                "%s: the file changed on the server: the answer to If-Range %s is the "
                                "whole file, ETag %s",
                                fr->url, fr->validator, fr->etag[0] ? fr->etag : "(none)");
                return upk_err(err, UPK_ERR_NETWORK, -EOPNOTSUPP,
                               "%s: the server ignores Range requests (it answered 200 with the whole file)",
                               fr->url);
        }
        if (fr->validator[0] && fr->etag[0] && !streq(fr->etag, fr->validator))
                return upk_err(err, UPK_ERR_NETWORK, -ESTALE,
                               "%s: the file changed on the server: ETag %s, before %s", fr->url, fr->etag,
                               fr->validator);
        if (!fr->validator[0] && fr->etag[0] && strncmp(fr->etag, "W/", 2) != 0 &&
            !strpbrk(fr->etag, "\r\n")) {
                /* The version later requests ask for with If-Range. */
                memcpy(fr->validator, fr->etag, sizeof(fr->validator));
                memcpy(f->validator, fr->etag, sizeof(f->validator));
                f->validator_is_etag = true;
        }

        ct = fetch_response_header(f, "Content-Type");
        while (ct && (*ct == ' ' || *ct == '\t'))
                ct++;
        if (ct && strncasecmp(ct, "multipart/", 10) == 0) {
                char boundary[MULTIPART_BOUNDARY_MAX + 1];

                if (multipart_boundary_from_content_type(ct, boundary, sizeof(boundary)) < 0)
                        return ranges_wrong(fr, err,
                                            "Content-Type \"%.128s\" is not multipart/byteranges "
                                            "with a valid boundary",
                                            ct);
                r = multipart_parser_new(boundary, &part_callbacks, fr, &fr->parser, err);
                if (r < 0)
                        return r;
                fr->multipart = true;
                return 0;
        }
        cr = fetch_response_header(f, "Content-Range");
        if (!cr || fetch_parse_content_range(cr, &start, &end, &total) < 0)
                return ranges_wrong(fr, err,
                                    "a 206 answer with a missing or malformed Content-Range%s%.64s%s",
                                    cr ? " \"" : "", cr ?: "", cr ? "\"" : "");
        r = ranges_check_part(fr, start, end, total, err);
        if (r < 0)
                return r;
        fr->single = true;
        fr->pos = start;
        fr->end = end;
        if (fr->asked > 1)
                fr->single_range = true;
        return 0;
}

static int ranges_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        FetchRanges *fr = userdata;
        int r;

        /* Room for all of it: the range bytes in it are never more. */
        if (fr->stream) {
                r = fetch_stream_reserve(fr->stream, f, size, err);
                if (r != FETCH_DATA_CONTINUE)
                        return r;
        }
        fr->wire_bytes += size;
        if (fr->parser) {
                r = multipart_parser_feed(fr->parser, buf, size, err);
                if (r < 0 && !fr->callback_failed) {
                        err->code = -EPROTO;
                        r = upk_err_prefix(err, "%s: the server answered the range request wrongly",
                                           fr->url);
                }
        } else if (fr->single) {
                if (size > fr->end - fr->pos + 1)
                        r = ranges_wrong(fr, err,
                                         "more bytes than its Content-Range (bytes ...-%" PRIu64 ") says",
                                         fr->end);
                else
                        r = ranges_take(fr, buf, size, fr->pos, err);
                fr->pos += size;
        } else
                r = ranges_wrong(fr, err, "a body without a response checked");
        f->offset = f->stats.delivered = fr->delivered;
        return r < 0 ? r : FETCH_DATA_CONTINUE;
}

static int ranges_end(Fetch *f, void *userdata, bool *ret_retriable, UpkErr *err)
{
        FetchRanges *fr = userdata;

        *ret_retriable = false;
        if (fr->parser && !multipart_parser_ended(fr->parser)) {
                *ret_retriable = true;
                return upk_err(err, UPK_ERR_NETWORK, -ECONNRESET,
                               "%s: the multipart answer ended before its closing boundary (%" PRIu64
                               " range bytes delivered)",
                               fr->url, fr->delivered);
        }
        if (fr->single && fr->pos != fr->end + 1) {
                *ret_retriable = true;
                return upk_err(err, UPK_ERR_NETWORK, -ECONNRESET,
                               "%s: the answer ended at byte %" PRIu64
                               " of its range, which ends at %" PRIu64,
                               fr->url, fr->pos, fr->end);
        }
        if (fr->idx == fr->n)
                return 1;
        if (fr->delivered == fr->delivered_before)
                return ranges_wrong(fr, err,
                                    "an answer without any of the bytes asked for (from byte %" PRIu64 ")",
                                    fr->want);
        return 0;
}

static bool ranges_complete(void *userdata)
{
        FetchRanges *fr = userdata;

        return fr->idx == fr->n;
}

static const FetchRangeOps range_ops = {
        .request = ranges_request,
        .response = ranges_response,
        .end = ranges_end,
        .complete = ranges_complete,
};

static void ranges_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        FetchRanges *fr = userdata;

        fr->requests = f->stats.attempts;
        fr->retries = f->stats.retries;
        fr->done = true;
        fr->r = r;
        if (r < 0 && err)
                fr->err = *err;
        if (fr->stream)
                fetch_stream_done(fr->stream, r, err);
}

static int fetch_ranges_new(const char *url, uint64_t total, const char *validator, const FetchRange *ranges,
                            size_t n, const FetchOptions *opts, FetchRanges **ret, UpkErr *err)
{
        _cleanup_(fetch_ranges_freep) FetchRanges *fr = NULL;

        /* The file's size is known (a range to memory of a size not known yet passes its own bound). */
        if (total == 0 || total == UINT64_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%.256s: file size %" PRIu64 " for ranges",
                               url ?: "(null)", total);
        if (!url)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no URL to fetch");
        if (opts &&
            (opts->any_status || opts->body_size > 0 || (opts->method && !streq(opts->method, "GET"))))
                return upk_err(
                        err, UPK_ERR_CONFIG, -EINVAL,
                        "%.256s: ranges are fetched with GET, not as a REST call (method, body, any_status)",
                        url);
        if (n == 0 || n > FETCH_RANGES_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%.256s: %zu ranges to fetch, not 1 to %u", url,
                               n, FETCH_RANGES_MAX);
        for (size_t i = 0; i < n; i++) {
                const FetchRange *r = &ranges[i];

                if (r->length == 0 || r->offset > total || r->length > total - r->offset ||
                    (i > 0 && r->offset < ranges[i - 1].offset + ranges[i - 1].length))
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "%.256s: range %zu (%" PRIu64 " bytes at %" PRIu64
                                       ") is empty, beyond the file's %" PRIu64
                                       " bytes, or not after the one before",
                                       url, i, r->length, r->offset, total);
        }
        fr = calloc(1, sizeof(*fr));
        if (!fr)
                return upk_err_oom(err);
        fr->url = strdup(url);
        fr->ranges = malloc(n * sizeof(*ranges));
        if (!fr->url || !fr->ranges)
                return upk_err_oom(err);
        memcpy(fr->ranges, ranges, n * sizeof(*ranges));
        fr->n = n;
        fr->total = total;
        fr->want = ranges[0].offset;
        if (validator && strlen(validator) < sizeof(fr->validator) && strncmp(validator, "W/", 2) != 0 &&
            !strpbrk(validator, "\r\n"))
                memcpy(fr->validator, validator, strlen(validator) + 1);
        *ret = TAKE_PTR(fr);
        return 0;
}

int fetch_stream_new_ranges(FetchEngine *e, const char *url, uint64_t total, const char *validator,
                            const FetchRange *ranges, size_t n_ranges, const FetchOptions *opts,
                            size_t buffer_size, FetchStream **ret, UpkErr *err)
{
        _cleanup_(fetch_stream_freep) FetchStream *s = NULL;
        _cleanup_(fetch_ranges_freep) FetchRanges *fr = NULL;
        Fetch *f = NULL;
        int r;

        r = fetch_ranges_new(url, total, validator, ranges, n_ranges, opts, &fr, err);
        if (r < 0)
                return r;
        r = fetch_stream_alloc(e, buffer_size, &s, err);
        if (r < 0)
                return r;
        fr->stream = s;
        r = fetch_new_ranged(e, url, total, fr->validator, opts, &range_ops, ranges_data, ranges_done, fr,
                             &f, err);
        if (r < 0)
                return r;
        fetch_stream_attach(s, f, TAKE_PTR(fr));
        *ret = TAKE_PTR(s);
        return 0;
}

void fetch_stream_get_ranges_stats(FetchStream *s, FetchRangesStats *ret)
{
        FetchRanges *fr = fetch_stream_get_ranges(s);

        *ret = (FetchRangesStats){ 0 };
        if (!fr)
                return;
        *ret = (FetchRangesStats){
                .wire_bytes = fr->wire_bytes,
                .delivered = fr->delivered,
                .requests = fr->requests,
                .retries = fr->retries,
                .multipart = fr->multipart,
                .single_range = fr->single_range,
        };
}

static int ranges_to_memory(FetchRanges *fr, const char *url, uint64_t total, const char *validator,
                            const FetchOptions *opts, FetchRangesStats *ret_stats, UpkErr *err)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *e = NULL;
        _cleanup_(fetch_freep) Fetch *f = NULL;
        int r;

        r = sd_event_new(&event);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create an event loop: %m");
        r = fetch_engine_new(event, &e, err);
        if (r < 0)
                return r;
        r = fetch_new_ranged(e, url, total, validator, opts, &range_ops, ranges_data, ranges_done, fr, &f,
                             err);
        if (r < 0)
                return r;
        while (!fr->done) {
                r = sd_event_run(event, UINT64_MAX);
                if (r < 0)
                        return upk_err(err, UPK_ERR_IO, r, "%s: event loop failed: %m", url);
        }
        if (ret_stats)
                *ret_stats = (FetchRangesStats){
                        .wire_bytes = fr->wire_bytes,
                        .delivered = fr->delivered,
                        .requests = fr->requests,
                        .retries = fr->retries,
                        .multipart = fr->multipart,
                        .single_range = fr->single_range,
                };
        if (fr->r < 0) {
                if (err && err->kind == UPK_ERR_NONE)
                        *err = fr->err;
                return fr->r;
        }
        return 0;
}

int fetch_range_to_memory(const char *url, uint64_t offset, uint64_t length, const FetchOptions *opts,
                          void **ret, uint64_t *ret_length, uint64_t *ret_total, char *ret_etag,
                          FetchRangesStats *ret_stats, UpkErr *err)
{
        _cleanup_(fetch_ranges_freep) FetchRanges *fr = NULL;
        const FetchRange range = { offset, length };
        int r;

        if (length == 0 || length > FETCH_MEMORY_MAX || offset > UINT64_MAX - 1 - length)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%.256s: %" PRIu64 " bytes at %" PRIu64 ": not 1 to %u bytes in a file",
                               url ?: "(null)", length, offset, FETCH_MEMORY_MAX);
        r = fetch_ranges_new(url, UINT64_MAX - 1, NULL, &range, 1, opts, &fr, err);
        if (r < 0)
                return r;
        fr->total = UINT64_MAX;
        fr->up_to_end = ret_length;
        fr->mem = malloc(length);
        if (!fr->mem)
                return upk_err_oom(err);
        r = ranges_to_memory(fr, url, UINT64_MAX, NULL, opts, ret_stats, err);
        if (r < 0)
                return r;
        if (ret_length)
                *ret_length = fr->ranges[0].length;
        if (ret_total)
                *ret_total = fr->total;
        if (ret_etag)
                memcpy(ret_etag, fr->etag, sizeof(fr->etag));
        *ret = TAKE_PTR(fr->mem);
        return 0;
}

int fetch_ranges_to_memory(const char *url, uint64_t total, const char *validator, const FetchRange *ranges,
                           size_t n_ranges, const FetchOptions *opts, void *buf, size_t size,
                           FetchRangesStats *ret_stats, UpkErr *err)
{
        _cleanup_(fetch_ranges_freep) FetchRanges *fr = NULL;
        uint64_t sum = 0;
        int r;

        r = fetch_ranges_new(url, total, validator, ranges, n_ranges, opts, &fr, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_ranges; i++)
                sum += ranges[i].length;
        if (sum != size)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%.256s: the ranges hold %" PRIu64 " bytes, the buffer %zu", url, sum, size);
        fr->mem = buf; /* borrowed: given back before fr is freed */
        r = ranges_to_memory(fr, url, total, fr->validator, opts, ret_stats, err);
        fr->mem = NULL;
        return r;
}
