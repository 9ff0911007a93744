/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The multipart/byteranges parser: a state machine over the body's bytes that hands out the parts' bytes
 * in place, without copying them. */

#include "multipart.h"

#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "fetch.h"

typedef enum MultipartState {
        MP_PREAMBLE,   /* looking for the first delimiter */
        MP_DELIMITER,  /* after a part's bytes: CRLF "--" boundary must follow */
        MP_AFTER,      /* after a boundary: "--", or padding and CRLF */
        MP_CLOSE,      /* read one '-' of "--" */
        MP_PADDING,    /* spaces and tabs until CR */
        MP_PADDING_LF, /* read the CR after a boundary */
        MP_HEADERS,    /* header lines until an empty one */
        MP_DATA,       /* the part's bytes */
        MP_EPILOGUE,   /* after the closing delimiter */
        MP_FAILED,
} MultipartState;

struct MultipartParser {
        MultipartCallbacks cb;
        void *userdata;
        char delimiter[4 + MULTIPART_BOUNDARY_MAX + 1]; /* CRLF "--" boundary */
        size_t delimiter_len;

        MultipartState state;
        size_t match;     /* bytes of `delimiter` matched */
        uint64_t pos;     /* bytes of the body fed so far */
        uint64_t counted; /* bytes of the preamble, the padding or the epilogue so far */
        unsigned parts;

        char headers[MULTIPART_HEADERS_MAX + 1];
        size_t headers_len, line_start;
        bool have_range;
        uint64_t start, end, total; /* of the current part */
        uint64_t offset, left;      /* next file offset of the current part, bytes still to come */
};

/* RFC 2046 bchars: a boundary may end with any but space. */
static bool is_bchar(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c != 0 && strchr("'()+_,-./:=? ", c));
}

static bool is_tchar(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *p)
{
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

int multipart_boundary_from_content_type(const char *content_type, char *ret, size_t size)
{
        static const char type[] = "multipart/byteranges";
        char value[MULTIPART_BOUNDARY_MAX + 1];
        bool found = false;
        const char *p;

        if (!content_type || size < MULTIPART_BOUNDARY_MAX + 1)
                return -EINVAL;
        p = skip_ows(content_type);
        if (strncasecmp(p, type, strlen(type)) != 0)
                return -EINVAL;
        p = skip_ows(p + strlen(type));
        while (*p) {
                const char *name;
                size_t name_len, n = 0;

                if (*p != ';')
                        return -EINVAL;
                p = skip_ows(p + 1);
                if (!*p)
                        break; /* a trailing ';' */
                name = p;
                while (is_tchar(*p))
                        p++;
                name_len = (size_t)(p - name);
                if (name_len == 0 || *p != '=')
                        return -EINVAL;
                p++;
                if (*p == '"') {
                        for (p++; *p != '"'; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                if (!*p || (unsigned char)*p < ' ' || n >= sizeof(value) - 1)
                                        return -EINVAL;
                                value[n++] = *p;
                        }
                        p++;
                } else {
                        for (; is_tchar(*p); p++) {
                                if (n >= sizeof(value) - 1)
                                        return -EINVAL;
                                value[n++] = *p;
                        }
                }
                value[n] = 0;
                p = skip_ows(p);
                if (name_len != 8 || strncasecmp(name, "boundary", 8) != 0)
                        continue;
                if (found || n == 0 || value[n - 1] == ' ')
                        return -EINVAL;
                for (size_t i = 0; i < n; i++)
                        if (!is_bchar(value[i]))
                                return -EINVAL;
                memcpy(ret, value, n + 1);
                found = true;
        }
        return found ? 0 : -EINVAL;
}

int multipart_parser_new(const char *boundary, const MultipartCallbacks *cb, void *userdata,
                         MultipartParser **ret, UpkErr *err)
{
        MultipartParser *p;
        size_t n = boundary ? strlen(boundary) : 0;

        if (n == 0 || n > MULTIPART_BOUNDARY_MAX)
                return upk_err(err, UPK_ERR_NETWORK, -EINVAL, "multipart boundary of %zu characters", n);
        p = calloc(1, sizeof(*p));
        if (!p)
                return upk_err_oom(err);
        p->cb = *cb;
        p->userdata = userdata;
        memcpy(p->delimiter, "\r\n--", 4);
        memcpy(p->delimiter + 4, boundary, n + 1);
        p->delimiter_len = 4 + n;
        p->state = MP_PREAMBLE;
        p->match = 2; /* the body's start counts as the start of a line */
        *ret = p;
        return 0;
}

MultipartParser *multipart_parser_free(MultipartParser *p)
{
        free(p);
        return NULL;
}

bool multipart_parser_ended(const MultipartParser *p)
{
        return p->state == MP_EPILOGUE;
}

static int parser_fail(MultipartParser *p, UpkErr *err, int r, const char *what)
{
        p->state = MP_FAILED;
        return upk_err(err, UPK_ERR_NETWORK, r, "multipart body, byte %" PRIu64 " (part %u): %s", p->pos,
                       p->parts, what);
}

/* One complete header line [line_start, headers_len - 2), without its CRLF. */
static int parser_header_line(MultipartParser *p, UpkErr *err)
{
        char *line = p->headers + p->line_start, *colon, *value, *e;
        uint64_t start, end, total;

        p->headers[p->headers_len - 2] = 0;
        colon = strchr(line, ':');
        if (!colon || colon == line)
                return parser_fail(p, err, -EBADMSG, "a part's header line without a name and a colon");
        for (char *c = line; c < colon; c++)
                if (!is_tchar(*c))
                        return parser_fail(p, err, -EBADMSG,
                                           "a part's header name with a character not allowed");
        if ((size_t)(colon - line) != strlen("Content-Range") || strncasecmp(line, "Content-Range", 13) != 0)
                return 0; /* Content-Type and whatever else: not needed */
        if (p->have_range)
                return parser_fail(p, err, -EBADMSG, "a part with two Content-Range headers");
        value = (char *)skip_ows(colon + 1);
        e = value + strlen(value);
        while (e > value && (e[-1] == ' ' || e[-1] == '\t'))
                *--e = 0;
        if (fetch_parse_content_range(value, &start, &end, &total) < 0)
                return parser_fail(p, err, -EBADMSG, "a part's Content-Range is malformed");
        p->have_range = true;
        p->start = start;
        p->end = end;
        p->total = total;
        return 0;
}

/* The empty line after the headers: the part's bytes follow. */
static int parser_headers_done(MultipartParser *p, UpkErr *err)
{
        int r;

        if (!p->have_range)
                return parser_fail(p, err, -EBADMSG, "a part without Content-Range");
        p->offset = p->start;
        p->left = p->end - p->start + 1;
        p->state = MP_DATA;
        if (p->cb.part) {
                r = p->cb.part(p->start, p->end, p->total, p->userdata, err);
                if (r < 0) {
                        p->state = MP_FAILED;
                        return r;
                }
        }
        return 0;
}

/* A boundary was matched; the next part's headers or the end follow. */
static void parser_boundary(MultipartParser *p)
{
        p->state = MP_AFTER;
        p->counted = 0;
}

static int parser_byte(MultipartParser *p, char c, UpkErr *err)
{
        switch (p->state) {
        case MP_PREAMBLE:
                if (c == p->delimiter[p->match]) {
                        if (++p->match == p->delimiter_len)
                                parser_boundary(p);
                } else
                        p->match = c == '\r' ? 1 : 0; /* a boundary has no CR: no longer prefix matches */
                if (p->state == MP_PREAMBLE && ++p->counted > MULTIPART_PREAMBLE_MAX)
                        return parser_fail(p, err, -E2BIG, "no boundary within the preamble's limit");
                return 0;
        case MP_DELIMITER:
                if (c != p->delimiter[p->match]) {
                        char what[160];

                        snprintf(what, sizeof(what),
                                 "the part for bytes %" PRIu64 "-%" PRIu64
                                 " is not followed by its boundary: its data is longer or shorter than "
                                 "its Content-Range says",
                                 p->start, p->end);
                        return parser_fail(p, err, -EBADMSG, what);
                }
                if (++p->match == p->delimiter_len)
                        parser_boundary(p);
                return 0;
        case MP_AFTER:
                if (c == '-') {
                        p->state = MP_CLOSE;
                        return 0;
                }
                p->state = MP_PADDING;
                return parser_byte(p, c, err);
        case MP_PADDING:
                if (c == '\r') {
                        p->state = MP_PADDING_LF;
                        return 0;
                }
                if (c != ' ' && c != '\t')
                        return parser_fail(p, err, -EBADMSG,
                                           "a boundary followed by other than CRLF or \"--\"");
                if (++p->counted > MULTIPART_PADDING_MAX)
                        return parser_fail(p, err, -E2BIG, "too many spaces after a boundary");
                return 0;
        case MP_CLOSE:
                if (c != '-')
                        return parser_fail(p, err, -EBADMSG, "a boundary followed by a single '-'");
                p->state = MP_EPILOGUE;
                p->counted = 0;
                if (p->cb.end) {
                        int r = p->cb.end(p->userdata, err);

                        if (r < 0) {
                                p->state = MP_FAILED;
                                return r;
                        }
                }
                return 0;
        case MP_PADDING_LF:
                if (c != '\n')
                        return parser_fail(p, err, -EBADMSG, "a boundary line not ended by CRLF");
                p->state = MP_HEADERS;
                p->parts++;
                p->headers_len = p->line_start = 0;
                p->have_range = false;
                return 0;
        case MP_HEADERS:
                if (p->headers_len >= MULTIPART_HEADERS_MAX) {
                        char what[96];

                        snprintf(what, sizeof(what), "a part's headers longer than %d bytes",
                                 MULTIPART_HEADERS_MAX);
                        return parser_fail(p, err, -E2BIG, what);
                }
                if (c == 0 || (c == '\n' &&
                               (p->headers_len == p->line_start || p->headers[p->headers_len - 1] != '\r')))
                        return parser_fail(p, err, -EBADMSG, "a part's header with a NUL or a bare LF");
                if (p->headers_len > p->line_start && p->headers[p->headers_len - 1] == '\r' && c != '\n')
                        return parser_fail(p, err, -EBADMSG, "a part's header with a bare CR");
                p->headers[p->headers_len++] = c;
                if (c != '\n')
                        return 0;
                if (p->headers_len - p->line_start == 2) /* the empty line */
                        return parser_headers_done(p, err);
                if (p->headers[p->line_start] == ' ' || p->headers[p->line_start] == '\t')
                        return parser_fail(p, err, -EBADMSG, "a part's header folded over two lines");
                {
                        int r = parser_header_line(p, err);

                        if (r < 0)
                                return r;
                }
                p->line_start = p->headers_len;
                return 0;
        case MP_EPILOGUE:
                if (++p->counted > MULTIPART_EPILOGUE_MAX)
                        return parser_fail(p, err, -E2BIG, "an epilogue over its limit");
                return 0;
        case MP_DATA:
        case MP_FAILED:
                break;
        }
        return parser_fail(p, err, -EINVAL, "parser in a wrong state");
}

int multipart_parser_feed(MultipartParser *p, const void *buf, size_t size, UpkErr *err)
{
        const char *b = buf;
        int r;

        if (p->state == MP_FAILED)
                return upk_err(err, UPK_ERR_NETWORK, -EBADMSG, "multipart body: fed after an error");
        while (size > 0) {
                if (p->state == MP_DATA) {
                        size_t n = p->left < size ? (size_t)p->left : size;

                        if (p->cb.data) {
                                r = p->cb.data(b, n, p->offset, p->userdata, err);
                                if (r < 0) {
                                        p->state = MP_FAILED;
                                        return r;
                                }
                        }
                        p->offset += n;
                        p->left -= n;
                        p->pos += n;
                        b += n;
                        size -= n;
                        if (p->left == 0) {
                                p->state = MP_DELIMITER;
                                p->match = 0;
                        }
                        continue;
                }
                if (p->state == MP_EPILOGUE) {
                        /* Ignored: only counted against its limit. */
                        if (size > MULTIPART_EPILOGUE_MAX - p->counted) {
                                p->pos += MULTIPART_EPILOGUE_MAX - p->counted;
                                return parser_fail(p, err, -E2BIG, "an epilogue over its limit");
                        }
                        p->counted += size;
                        p->pos += size;
                        return 0;
                }
                r = parser_byte(p, *b, err);
                if (r < 0)
                        return r;
                p->pos++;
                b++;
                size--;
        }
        return 0;
}

int multipart_parser_finish(MultipartParser *p, UpkErr *err)
{
        if (p->state == MP_EPILOGUE)
                return 0;
        if (p->state == MP_FAILED)
                return upk_err(err, UPK_ERR_NETWORK, -EBADMSG, "multipart body: finished after an error");
        return parser_fail(p, err, -EBADMSG, "the body ended before its closing boundary");
}
