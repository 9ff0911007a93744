/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the multipart/byteranges parser (lib/net/multipart.c), which reads what a server answers to a
 * request for several byte ranges. The input: one byte for the size of the pieces the body is fed in,
 * then the Content-Type up to the first '\n' (its boundary is used when valid, else "THIS_SEPARATES"),
 * then the body. The parts' bytes must come in order, inside the Content-Range of their part, and every
 * error must have a message. */
#include "fuzz.h"
#include "multipart.h"

typedef struct State {
        bool in_part;
        uint64_t next, end;
} State;

static int on_part(uint64_t start, uint64_t end, uint64_t total, void *userdata, UpkErr *err)
{
        State *s = userdata;

        if (start > end || (total != UINT64_MAX && end >= total))
                abort();
        s->in_part = true;
        s->next = start;
        s->end = end;
        return 0;
}

static int on_data(const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        State *s = userdata;

        if (!s->in_part || size == 0 || offset != s->next || size - 1 > s->end - offset)
                abort();
        s->next += size;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const MultipartCallbacks cb = { .part = on_part, .data = on_data };
        _cleanup_(multipart_parser_freep) MultipartParser *p = NULL;
        char boundary[MULTIPART_BOUNDARY_MAX + 1] = "THIS_SEPARATES", ct[512];
        const uint8_t *nl;
        State s = { 0 };
        UpkErr err = { 0 };
        size_t piece, n;
        int r = 0;

        if (size < 1)
                return 0;
        piece = (size_t)data[0] + 1;
        data++;
        size--;
        nl = memchr(data, '\n', size);
        if (nl) {
                n = (size_t)(nl - data);
                if (n < sizeof(ct)) {
                        memcpy(ct, data, n);
                        ct[n] = 0;
                        if (multipart_boundary_from_content_type(ct, boundary, sizeof(boundary)) < 0)
                                memcpy(boundary, "THIS_SEPARATES", sizeof("THIS_SEPARATES"));
                }
                size -= n + 1;
                data = nl + 1;
        }
        if (multipart_parser_new(boundary, &cb, &s, &p, &err) < 0)
                abort();
        for (size_t at = 0; at < size && r >= 0; at += n) {
                n = size - at < piece ? size - at : piece;
                r = multipart_parser_feed(p, data + at, n, &err);
        }
        if (r >= 0)
                r = multipart_parser_finish(p, &err);
        if (r < 0 && (!err.msg[0] || err.code != r))
                abort();
        if (r >= 0 && !multipart_parser_ended(p))
                abort();
        return 0;
}
