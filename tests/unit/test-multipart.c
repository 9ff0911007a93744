/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/net/multipart.c: the boundary from a Content-Type, and the parser fed in pieces of every size, on
 * good bodies and on bodies broken in each way the parser refuses. */
#include "multipart.h"
#include "tests.h"

#define OUT_MAX 4096

typedef struct Collect {
        char out[OUT_MAX]; /* "[start-end/total]" per part, then its bytes, "<end>" at the end */
        size_t len;
        uint64_t next; /* the offset the next data bytes must have */
} Collect;

static void put(Collect *c, const char *s, size_t n)
{
        ASSERT_TRUE(c->len + n < sizeof(c->out));
        memcpy(c->out + c->len, s, n);
        c->len += n;
        c->out[c->len] = 0;
}

static int on_part(uint64_t start, uint64_t end, uint64_t total, void *userdata, UpkErr *err)
{
        Collect *c = userdata;
        char s[96];

        if (total == UINT64_MAX)
                snprintf(s, sizeof(s), "[%" PRIu64 "-%" PRIu64 "/*]", start, end);
        else
                snprintf(s, sizeof(s), "[%" PRIu64 "-%" PRIu64 "/%" PRIu64 "]", start, end, total);
        put(c, s, strlen(s));
        c->next = start;
        return 0;
}

static int on_data(const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        Collect *c = userdata;

        ASSERT_TRUE(size > 0);
        ASSERT_EQ(offset, c->next);
        c->next += size;
        put(c, buf, size);
        return 0;
}

static int on_end(void *userdata, UpkErr *err)
{
        put(userdata, "<end>", 5);
        return 0;
}

static const MultipartCallbacks callbacks = { .part = on_part, .data = on_data, .end = on_end };

/* Feed `body` in pieces of `piece` bytes (0: all at once), then finish: the first error, or 0. */
static int parse(const char *boundary, const char *body, size_t size, size_t piece, Collect *c, UpkErr *err)
{
        _cleanup_(multipart_parser_freep) MultipartParser *p = NULL;
        int r;

        *c = (Collect){ 0 };
        ASSERT_OK(multipart_parser_new(boundary, &callbacks, c, &p, err));
        for (size_t at = 0; at < size;) {
                size_t n = piece == 0 || size - at < piece ? size - at : piece;

                r = multipart_parser_feed(p, body + at, n, err);
                if (r < 0)
                        return r;
                at += n;
        }
        return multipart_parser_finish(p, err);
}

#define GOOD_BODY                                    \
        "--THIS_SEPARATES\r\n"                       \
        "Content-Type: application/octet-stream\r\n" \
        "Content-Range: bytes 500-509/8000\r\n"      \
        "\r\n"                                       \
        "0123456789\r\n"                             \
        "--THIS_SEPARATES\r\n"                       \
        "content-range:bytes 7000-7003/8000  \r\n"   \
        "\r\n"                                       \
        "\r\n--\r\n"                                 \
        "--THIS_SEPARATES--\r\n"
#define GOOD_OUT "[500-509/8000]0123456789[7000-7003/8000]\r\n--<end>"

TEST(pieces_of_every_size)
{
        static const char body[] = GOOD_BODY;
        Collect c;
        UpkErr err = { 0 };

        for (size_t piece = 0; piece <= sizeof(body); piece++) {
                ASSERT_OK_E(parse("THIS_SEPARATES", body, sizeof(body) - 1, piece, &c, &err), &err);
                ASSERT_STREQ(c.out, GOOD_OUT);
        }
}

TEST(split_at_every_position)
{
        static const char body[] = GOOD_BODY;
        const size_t size = sizeof(body) - 1;

        for (size_t at = 0; at <= size; at++) {
                _cleanup_(multipart_parser_freep) MultipartParser *p = NULL;
                Collect c = { 0 };
                UpkErr err = { 0 };

                ASSERT_OK(multipart_parser_new("THIS_SEPARATES", &callbacks, &c, &p, &err));
                ASSERT_OK_E(multipart_parser_feed(p, body, at, &err), &err);
                ASSERT_OK_E(multipart_parser_feed(p, body + at, size - at, &err), &err);
                ASSERT_OK_E(multipart_parser_finish(p, &err), &err);
                ASSERT_TRUE(multipart_parser_ended(p));
                ASSERT_STREQ(c.out, GOOD_OUT);
        }
}

TEST(preamble_padding_epilogue)
{
        static const char body[] = "this is the preamble\r\n--b  \t\r\n"
                                   "Content-Range: bytes 0-2/*\r\n\r\nabc\r\n--b--"
                                   "\r\nthe epilogue, ignored\r\n--b\r\n";
        static const char crlf_first[] = "\r\n--b\r\nContent-Range: bytes 1-1/2\r\n\r\nx\r\n--b--";
        Collect c;
        UpkErr err = { 0 };

        ASSERT_OK_E(parse("b", body, sizeof(body) - 1, 1, &c, &err), &err);
        ASSERT_STREQ(c.out, "[0-2/*]abc<end>");
        ASSERT_OK_E(parse("b", crlf_first, sizeof(crlf_first) - 1, 0, &c, &err), &err);
        ASSERT_STREQ(c.out, "[1-1/2]x<end>");
}

TEST(broken_bodies)
{
        static const struct {
                const char *name, *body;
                int r;
                const char *msg;
        } cases[] = {
                { "no Content-Range", "--b\r\nContent-Type: text/plain\r\n\r\nabc\r\n--b--", -EBADMSG,
                  "without Content-Range" },
                { "two Content-Range",
                  "--b\r\nContent-Range: bytes 0-0/5\r\nContent-Range: bytes 0-0/5\r\n\r\n", -EBADMSG,
                  "two Content-Range" },
                { "malformed Content-Range", "--b\r\nContent-Range: bytes 5-1/9\r\n\r\n", -EBADMSG,
                  "Content-Range is malformed" },
                { "header without colon", "--b\r\nContent-Range bytes 0-1/2\r\n\r\n", -EBADMSG, "colon" },
                { "bare LF", "--b\r\nContent-Range: bytes 0-1/2\n\r\n", -EBADMSG, "bare LF" },
                { "bare CR", "--b\r\nContent-Range: bytes 0-1/2\rX\r\n\r\n", -EBADMSG, "bare CR" },
                { "folded header", "--b\r\nContent-Range: bytes 0-1/2\r\n x\r\n\r\n", -EBADMSG, "folded" },
                { "data longer", "--b\r\nContent-Range: bytes 0-1/9\r\n\r\nabc\r\n--b--", -EBADMSG,
                  "longer or shorter" },
                { "data shorter",
                  "--b\r\nContent-Range: bytes 0-5/9\r\n\r\nabc\r\n--b\r\n"
                  "Content-Range: bytes 7-8/9\r\n\r\nxy\r\n--b--",
                  -EBADMSG, "longer or shorter" },
                { "truncated in data", "--b\r\nContent-Range: bytes 0-5/9\r\n\r\nabc", -EBADMSG,
                  "ended before its closing boundary" },
                { "truncated in headers", "--b\r\nContent-Range: bytes 0-5/9\r\n", -EBADMSG,
                  "ended before its closing boundary" },
                { "no close delimiter", "--b\r\nContent-Range: bytes 0-2/9\r\n\r\nabc\r\n--b", -EBADMSG,
                  "ended before its closing boundary" },
                { "empty body", "", -EBADMSG, "ended before its closing boundary" },
                { "boundary followed by junk", "--bx\r\n", -EBADMSG, "other than CRLF" },
                { "single dash", "--b-\r\n", -EBADMSG, "single '-'" },
                { "CR without LF after boundary", "--b\rX", -EBADMSG, "not ended by CRLF" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                for (size_t piece = 0; piece < 4; piece++) {
                        Collect c;
                        UpkErr err = { 0 };
                        int r = parse("b", cases[i].body, strlen(cases[i].body), piece, &c, &err);

                        if (r != cases[i].r || !strstr(err.msg, cases[i].msg))
                                test_fail("%s: %d \"%s\", expected %d \"%s\"", cases[i].name, r, err.msg,
                                          cases[i].r, cases[i].msg);
                        ASSERT_EQ(err.kind, UPK_ERR_NETWORK);
                }
}

TEST(limits)
{
        char body[MULTIPART_PREAMBLE_MAX + MULTIPART_HEADERS_MAX + 256];
        Collect c;
        UpkErr err = { 0 };
        size_t n;

        /* headers: one long unknown header line */
        n = (size_t)snprintf(body, sizeof(body), "--b\r\nContent-Range: bytes 0-0/1\r\nX-Long: ");
        memset(body + n, 'x', MULTIPART_HEADERS_MAX);
        n += MULTIPART_HEADERS_MAX;
        memcpy(body + n, "\r\n\r\nz\r\n--b--", 12);
        n += 12;
        ASSERT_EQ(parse("b", body, n, 0, &c, &err), -E2BIG);
        ASSERT_TRUE(strstr(err.msg, "headers longer than 1024 bytes"));

        /* just within the limit */
        n = (size_t)snprintf(body, sizeof(body), "--b\r\nContent-Range: bytes 0-0/1\r\nX-Long: ");
        memset(body + n, 'x', MULTIPART_HEADERS_MAX - n + 5 - 4);
        n += MULTIPART_HEADERS_MAX - n + 5 - 4;
        memcpy(body + n, "\r\n\r\nz\r\n--b--", 12);
        n += 12;
        err = (UpkErr){ 0 };
        ASSERT_OK_E(parse("b", body, n, 7, &c, &err), &err);
        ASSERT_STREQ(c.out, "[0-0/1]z<end>");

        /* the preamble */
        memset(body, 'p', MULTIPART_PREAMBLE_MAX + 1);
        err = (UpkErr){ 0 };
        ASSERT_EQ(parse("b", body, MULTIPART_PREAMBLE_MAX + 1, 100, &c, &err), -E2BIG);
        ASSERT_TRUE(strstr(err.msg, "preamble"));

        /* the epilogue */
        n = (size_t)snprintf(body, sizeof(body), "--b\r\nContent-Range: bytes 0-0/1\r\n\r\nz\r\n--b--");
        memset(body + n, 'e', MULTIPART_EPILOGUE_MAX + 1);
        err = (UpkErr){ 0 };
        ASSERT_EQ(parse("b", body, n + MULTIPART_EPILOGUE_MAX + 1, 0, &c, &err), -E2BIG);
        ASSERT_TRUE(strstr(err.msg, "epilogue"));
        err = (UpkErr){ 0 };
        ASSERT_OK_E(parse("b", body, n + MULTIPART_EPILOGUE_MAX, 1000, &c, &err), &err);

        /* padding after a boundary */
        n = (size_t)snprintf(body, sizeof(body), "--b");
        memset(body + n, ' ', MULTIPART_PADDING_MAX + 1);
        err = (UpkErr){ 0 };
        ASSERT_EQ(parse("b", body, n + MULTIPART_PADDING_MAX + 1, 0, &c, &err), -E2BIG);
}

static int refuse_part(uint64_t start, uint64_t end, uint64_t total, void *userdata, UpkErr *err)
{
        return upk_err(err, UPK_ERR_NETWORK, -ESTALE, "refused by the callback");
}

TEST(callback_error_stops_the_parser)
{
        static const char body[] = GOOD_BODY;
        static const MultipartCallbacks cb = { .part = refuse_part };
        _cleanup_(multipart_parser_freep) MultipartParser *p = NULL;
        UpkErr err = { 0 };

        ASSERT_OK(multipart_parser_new("THIS_SEPARATES", &cb, NULL, &p, &err));
        ASSERT_EQ(multipart_parser_feed(p, body, sizeof(body) - 1, &err), -ESTALE);
        ASSERT_STREQ(err.msg, "refused by the callback");
        err = (UpkErr){ 0 };
        ASSERT_TRUE(multipart_parser_feed(p, "x", 1, &err) < 0);
        ASSERT_TRUE(multipart_parser_finish(p, &err) < 0);
}

TEST(boundary_from_content_type)
{
        static const struct {
                const char *ct;
                int r;
                const char *boundary;
        } cases[] = {
                { "multipart/byteranges; boundary=THIS_SEPARATES", 0, "THIS_SEPARATES" },
                { "Multipart/ByteRanges;BOUNDARY=abc", 0, "abc" },
                { "multipart/byteranges; charset=x; boundary=\"a b:c\"", 0, "a b:c" },
                { "multipart/byteranges; boundary=\"q\\\"\"; x=y", -EINVAL, NULL }, /* '"' is no bchar */
                { "multipart/byteranges; boundary=\"3d6b6a416f9b5\" ; other=1", 0, "3d6b6a416f9b5" },
                { "  multipart/byteranges ; boundary=z;", 0, "z" },
                { "multipart/byteranges; boundary="
                  "1234567890123456789012345678901234567890123456789012345678901234567890",
                  0, "1234567890123456789012345678901234567890123456789012345678901234567890" },
                { "multipart/byteranges; boundary="
                  "12345678901234567890123456789012345678901234567890123456789012345678901",
                  -EINVAL, NULL },
                { "multipart/byteranges; boundary=\"\"", -EINVAL, NULL },
                { "multipart/byteranges; boundary=\"ends with space \"", -EINVAL, NULL },
                { "multipart/byteranges; boundary=a; boundary=b", -EINVAL, NULL },
                { "multipart/byteranges", -EINVAL, NULL },
                { "multipart/mixed; boundary=abc", -EINVAL, NULL },
                { "multipart/byterangesx; boundary=abc", -EINVAL, NULL },
                { "application/octet-stream", -EINVAL, NULL },
                { "multipart/byteranges; boundary=\"unterminated", -EINVAL, NULL },
                { "multipart/byteranges; boundary", -EINVAL, NULL },
                { "", -EINVAL, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char b[MULTIPART_BOUNDARY_MAX + 1] = "unchanged";
                int r = multipart_boundary_from_content_type(cases[i].ct, b, sizeof(b));

                if (r != cases[i].r)
                        test_fail("\"%s\": %d, expected %d", cases[i].ct, r, cases[i].r);
                if (r == 0)
                        ASSERT_STREQ(b, cases[i].boundary);
        }
}

TEST(quoted_boundary_body)
{
        static const char body[] = "--a b:c\r\nContent-Range: bytes 3-4/10\r\n\r\nhi\r\n--a b:c--";
        char b[MULTIPART_BOUNDARY_MAX + 1];
        Collect c;
        UpkErr err = { 0 };

        ASSERT_OK(multipart_boundary_from_content_type("multipart/byteranges; boundary=\"a b:c\"", b,
                                                       sizeof(b)));
        ASSERT_OK_E(parse(b, body, sizeof(body) - 1, 3, &c, &err), &err);
        ASSERT_STREQ(c.out, "[3-4/10]hi<end>");
}
