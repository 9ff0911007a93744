/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "json-util.h"
#include "tests.h"

static const JsonStrictOptions opts = {
        .what = "doc",
        .kind = UPK_ERR_MANIFEST,
        .depth_max = 4,
};

static json_object *parse_ok(const char *text)
{
        json_object *o = NULL;
        UpkErr e = {};

        ASSERT_OK_E(json_parse_strict(text, strlen(text), &opts, &o, &e), &e);
        ASSERT_TRUE(o);
        return o;
}

TEST(accepts_plain_objects)
{
        static const char *const good[] = {
                "{}",
                " \t\r\n{\"a\": 1} \n",
                "{\"a\": {\"b\": [1, 2, null]}, \"d\": \"caf\\u00e9 \xc3\xa9 \xf0\x9f\x98\x80\"}",
                "{\"a\": 1, \"b\": {\"a\": 2}}",          /* the same key in another object */
                "{\"x\": [{\"k\": 1}, {\"k\": 2}]}",      /* and in sibling objects */
                "{\"s\": \"a\\\"b\\\\c\\/d\\n\\u0000\"}", /* an escaped NUL in a value */
                "{\"k\": \"it's\"}",                      /* a quote inside a string */
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_(json_object_putp) json_object *o = parse_ok(good[i]);
                ASSERT_TRUE(json_object_is_type(o, json_type_object));
        }
}

TEST(rejects_with_a_message)
{
        static const struct {
                const char *text, *msg;
        } bad[] = {
                { "", "doc: empty, expected a JSON object" },
                { "  \n", "doc: empty, expected a JSON object" },
                { "[1]", "doc: the top level is not a JSON object" },
                { "\"s\"", "doc: the top level is not a JSON object" },
                { "{\"a\": 1", "doc: not valid JSON at byte 7: unexpected end of data" },
                { "{\"a\": 1} x", "not valid JSON at byte" },
                { "{\"a\": 1}}", "not valid JSON at byte" },
                { "{'a': 1}", "not valid JSON" },
                { "{\"a\": 'b'}", "not valid JSON" },
                { "{\"a\": 1, \"a\": 2}", "doc: duplicate key \"a\" at top level" },
                { "{\"o\": {\"k\": 1, \"k\": 1}}", "doc: duplicate key \"k\" in o" },
                { "{\"l\": [{\"k\": 1}, {\"j\": 1, \"j\": 2}]}", "doc: duplicate key \"j\" in l[1]" },
                { "{\"\\u0061\": 1, \"a\": 2}", "duplicate key \"a\"" }, /* escaped the same */
                { "{\"a\\u0000b\": 1}", "doc: byte 3: a key contains a NUL character" },
                { "{\"a\": \"x\ty\"}", "control character in a string" },
                { "{\"a\": \"\xc0\xaf\"}", "invalid UTF-8" },         /* overlong '/' */
                { "{\"a\": \"\xed\xa0\x80\"}", "invalid UTF-8" },     /* a surrogate */
                { "{\"a\": \"\xf4\x90\x80\x80\"}", "invalid UTF-8" }, /* above U+10FFFF */
                { "{\"a\": \"\xe2\x82\"}", "not valid JSON" },        /* cut short */
                { "{\"a\": [[[[[1]]]]]}", "nesting too deep" },
                { "{\"a\": 01}", "not valid JSON" },
                { "{\"a\": 1,}", "not valid JSON" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_object *o = NULL;
                UpkErr e = {};
                int r = json_parse_strict(bad[i].text, strlen(bad[i].text), &opts, &o, &e);
                if (r != -EBADMSG || o)
                        test_fail("%s: %d, expected -EBADMSG", bad[i].text, r);
                if (e.kind != UPK_ERR_MANIFEST || !strstr(e.msg, bad[i].msg))
                        test_fail("%s: message \"%s\" (kind %s) lacks \"%s\"", bad[i].text, e.msg,
                                  upk_err_kind_to_string(e.kind), bad[i].msg);
        }
}

TEST(nul_byte_after_the_object)
{
        static const char text[] = "{\"a\": 1}\0";
        json_object *o = NULL;
        UpkErr e = {};

        ASSERT_UPK_ERR(json_parse_strict(text, sizeof(text) - 1, &opts, &o, &e), &e, -EBADMSG,
                       UPK_ERR_MANIFEST, "doc: not valid JSON at byte 8: data after the top-level object");
        ASSERT_TRUE(!o);
}

TEST(nesting_at_the_limit)
{
        _cleanup_(json_object_putp) json_object *o =
                parse_ok("{\"a\": [[1]]}"); /* json-c's depth 4: 3 levels */
        ASSERT_EQ(json_object_object_length(o), 1);
}

TEST(objects_max_bounds_the_duplicate_check)
{
        /* Only the first object is checked for repeated keys: the second one's pass. */
        JsonStrictOptions o1 = opts;
        static const char text[] = "{\"a\": {\"k\": 1, \"k\": 2}}";
        json_object *o = NULL;
        UpkErr e = {};

        o1.objects_max = 1;
        ASSERT_OK_E(json_parse_strict(text, strlen(text), &o1, &o, &e), &e);
        json_object_put(o);
        o = NULL;
        o1.objects_max = 2;
        ASSERT_UPK_ERR(json_parse_strict(text, strlen(text), &o1, &o, &e), &e, -EBADMSG, UPK_ERR_MANIFEST,
                       "duplicate key \"k\" in a");
}

TEST(bad_arguments)
{
        json_object *o = NULL;
        UpkErr e = {};

        ASSERT_ERR(json_parse_strict(NULL, 1, &opts, &o, &e), -EINVAL);
        /* with a message naming the document, as every failure has */
        ASSERT_UPK_ERR(json_parse_strict(NULL, 1, &opts, &o, &e), &e, -EINVAL, UPK_ERR_MANIFEST, "doc: ");
}

TEST(printable)
{
        char buf[16];
        char long_text[100];

        ASSERT_STREQ(json_printable("plain text", buf, sizeof(buf)), "plain text");
        ASSERT_STREQ(json_printable("a\"b\\c\nd\x7f\xc3\xa9", buf, sizeof(buf)), "a?b?c?d???");
        ASSERT_STREQ(json_printable("", buf, sizeof(buf)), "");
        memset(long_text, 'x', sizeof(long_text) - 1);
        long_text[sizeof(long_text) - 1] = 0;
        ASSERT_STREQ(json_printable(long_text, buf, sizeof(buf)), "xxxxxxxxxxxx...");
        ASSERT_EQ(strlen(JSON_QUOTE(long_text)), JSON_QUOTE_MAX + 3);
}

TEST(cleanup_helpers_take_null)
{
        _cleanup_(json_object_putp) json_object *none = NULL;
        _cleanup_(json_tokener_freep) json_tokener *no_tok = NULL;
        _cleanup_(json_object_putp) json_object *some = json_object_new_object();
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();

        ASSERT_TRUE(some && tok);
        ASSERT_TRUE(!none && !no_tok);
}

TEST(typed_access)
{
        _cleanup_(json_object_putp) json_object *o = parse_ok(
                "{\"s\": \"text\", \"n\": 42, \"neg\": -1, \"big\": 18446744073709551615, \"b\": true, "
                "\"o\": {\"k\": \"v\"}, \"a\": [1], \"nul\": \"a\\u0000b\", \"d\": 1.5}");
        UpkErr e = {};
        const JsonCtx c = { .what = "doc", .kind = UPK_ERR_FORMAT, .err = &e };
        _cleanup_free_ char *dup = NULL;
        json_object *v = NULL;
        const char *s = NULL;
        uint64_t u = 7;
        bool b = false;

        ASSERT_EQ(json_get_string(&c, o, "", "s", true, 4, &s), 1);
        ASSERT_STREQ(s, "text");
        ASSERT_EQ(json_get_dup_string(&c, o, "", "s", true, 4, &dup), 1);
        ASSERT_STREQ(dup, "text");
        ASSERT_EQ(json_get_uint(&c, o, "", "n", true, 42, &u), 1);
        ASSERT_EQ(u, 42);
        ASSERT_EQ(json_get_bool(&c, o, "", "b", true, &b), 1);
        ASSERT_TRUE(b);
        ASSERT_EQ(json_get(&c, o, "", "o", json_type_object, true, &v), 1);
        ASSERT_EQ(json_get_string(&c, v, "o", "k", true, 10, &s), 1);
        ASSERT_STREQ(s, "v");

        /* Absent and optional: 0, nothing written. */
        u = 7;
        ASSERT_EQ(json_get_uint(&c, o, "", "absent", false, 10, &u), 0);
        ASSERT_EQ(u, 7);

        ASSERT_UPK_ERR(json_get_uint(&c, o, "", "absent", true, 10, &u), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: missing required key \"absent\"");
        ASSERT_UPK_ERR(json_get_string(&c, v, "o", "absent", true, 10, &s), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: o: missing required key \"absent\"");
        ASSERT_UPK_ERR(json_get_string(&c, o, "", "s", true, 3, &s), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: s: longer than 3 bytes");
        ASSERT_UPK_ERR(json_get_string(&c, o, "", "n", true, 3, &s), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: n: expected a string");
        ASSERT_UPK_ERR(json_get_string(&c, o, "", "nul", true, 10, &s), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: nul: contains a NUL character");
        ASSERT_UPK_ERR(json_get_uint(&c, o, "", "n", true, 41, &u), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: n: 42 is larger than the maximum 41");
        ASSERT_UPK_ERR(json_get_uint(&c, o, "", "neg", true, 41, &u), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: neg: must not be negative");
        ASSERT_UPK_ERR(json_get_uint(&c, o, "", "big", true, UINT64_MAX - 1, &u), &e, -EBADMSG,
                       UPK_ERR_FORMAT, "is larger than the maximum");
        ASSERT_UPK_ERR(json_get_uint(&c, o, "", "d", true, 10, &u), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: d: expected an integer");
        ASSERT_UPK_ERR(json_get_bool(&c, o, "", "n", true, &b), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: n: expected a boolean");
        ASSERT_UPK_ERR(json_get(&c, o, "", "a", json_type_object, true, &v), &e, -EBADMSG, UPK_ERR_FORMAT,
                       "doc: a: expected an object");
        ASSERT_EQ(u, 7); /* not written on failure */
}

TEST(check_keys)
{
        static const char *const allowed[] = { "a", "b", NULL };
        _cleanup_(json_object_putp) json_object *good = parse_ok("{\"a\": 1, \"b\": 2}");
        _cleanup_(json_object_putp) json_object *bad = parse_ok("{\"a\": 1, \"c\\n\": 2}");
        UpkErr e = {};
        const JsonCtx c = { .what = "doc", .kind = UPK_ERR_MANIFEST, .err = &e };

        ASSERT_OK(json_check_keys(&c, good, "", allowed));
        ASSERT_UPK_ERR(json_check_keys(&c, bad, "", allowed), &e, -EBADMSG, UPK_ERR_MANIFEST,
                       "doc: unknown key \"c?\" at top level");
        ASSERT_UPK_ERR(json_check_keys(&c, bad, "payloads[2]", allowed), &e, -EBADMSG, UPK_ERR_MANIFEST,
                       "unknown key \"c?\" in payloads[2]");
}
