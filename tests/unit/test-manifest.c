/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "manifest.h"
#include "hexdecoct.h"

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_C "ffffffffffffffffffffffffffffffff00000000000000000000000000000000"

/* Every key of the schema is used, every value is unique, so that one substitution breaks one thing. */
static const char VALID[] =
        "{\n"
        "  \"format\": 1,\n"
        "  \"compatible\": \"acme-gw\",\n"
        "  \"version\": \"2.1.0-rc.1+build.7\",\n"
        "  \"min_version\": \"1.4.0\",\n"
        "  \"build\": \"2026-11-25T10:00:00.5+01:00\",\n"
        "  \"description\": \"Quarterly update\",\n"
        "  \"security\": {\n"
        "    \"type\": \"mixed\",\n"
        "    \"advisories\": [\"CVE-2026-0001\", \"GHSA-abcd-efgh-ijkl\"],\n"
        "    \"summary\": \"Fixes two flaws\"\n"
        "  },\n"
        "  \"support\": {\"end\": \"2030-12-31\", \"url\": \"https://acme.example/support\"},\n"
        "  \"reboot\": false,\n"
        "  \"payloads\": [\n"
        "    {\"name\": \"rootfs\", \"file\": \"rootfs.ext4.zst\", \"handler\": \"raw\", \"slot_class\": "
        "\"rootfs\",\n"
        "     \"size\": 1000, \"sha256\": \"" SHA_A
        "\", \"compression\": \"zstd\", \"installed_size\": 4096},\n"
        "    {\"name\": \"app\", \"file\": \"app.tar\", \"handler\": \"archive\", \"target\": "
        "\"/opt/app\",\n"
        "     \"size\": 2048, \"sha256\": \"" SHA_B "\"},\n"
        "    {\"name\": \"conf\", \"file\": \"gw.conf\", \"handler\": \"exec:install-conf\", \"target\": "
        "\"/etc/gw.conf\",\n"
        "     \"size\": 0, \"sha256\": \"" SHA_C "\", \"installed_size\": 0}\n"
        "  ]\n"
        "}\n";

/* The smallest manifest: only the required keys. */
static const char MINIMAL[] = "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                              "\"2026-01-01T00:00:00Z\",\n"
                              " \"payloads\": [{\"name\": \"img\", \"file\": \"img\", \"handler\": \"raw\", "
                              "\"slot_class\": \"rootfs\",\n"
                              "               \"size\": 5, \"sha256\": \"" SHA_A "\"}]}";

/* base with the one occurrence of `from` replaced by `to`. */
static char *subst(const char *base, const char *from, const char *to)
{
        const char *hit = strstr(base, from);
        size_t nb = strlen(base), nf = strlen(from), nt = strlen(to);
        char *s;

        if (!hit || strstr(hit + 1, from))
                test_fail("\"%s\" must occur exactly once in the base document", from);
        s = malloc(nb - nf + nt + 1);
        ASSERT_TRUE(s);
        memcpy(s, base, (size_t)(hit - base));
        memcpy(s + (hit - base), to, nt);
        memcpy(s + (hit - base) + nt, hit + nf, nb - (size_t)(hit - base) - nf + 1);
        return s;
}

static void expect_bad_len(const char *label, const char *doc, size_t len, ManifestParseFlags flags,
                           const char *substr)
{
        Manifest *sentinel = (Manifest *)&sentinel, *m = sentinel;
        UpkErr e = {};
        int r;

        r = manifest_parse(doc, len, flags, &m, &e);
        if (r != -EBADMSG)
                test_fail("%s: manifest_parse() = %d, expected -EBADMSG; message: %s", label, r, e.msg);
        if (e.kind != UPK_ERR_MANIFEST || e.code != -EBADMSG)
                test_fail("%s: kind %s code %d", label, upk_err_kind_to_string(e.kind), e.code);
        if (!strneq(e.msg, "manifest: ", 10) || !strstr(e.msg, substr))
                test_fail("%s: message \"%s\" lacks \"%s\"", label, e.msg, substr);
        if (m != sentinel)
                test_fail("%s: *ret written on failure", label);
        printf("  %-28s %s\n", label, e.msg);
}

static void expect_bad(const char *label, const char *doc, ManifestParseFlags flags, const char *substr)
{
        expect_bad_len(label, doc, strlen(doc), flags, substr);
}

static Manifest *parse_ok(const char *doc, size_t len, ManifestParseFlags flags)
{
        Manifest *m = NULL;
        UpkErr e = {}, *ep = &e;

        ASSERT_OK_E(manifest_parse(doc, len, flags, &m, ep), ep);
        ASSERT_TRUE(m);
        ASSERT_EQ(e.kind, UPK_ERR_NONE);
        return m;
}

static bool str_eq(const char *a, const char *b)
{
        return (!a && !b) || (a && b && streq(a, b));
}

static bool version_eq(const Version *a, const Version *b)
{
        return a->major == b->major && a->minor == b->minor && a->patch == b->patch &&
               streq(a->prerelease, b->prerelease) && streq(a->build, b->build);
}

static void assert_manifest_eq(const Manifest *a, const Manifest *b)
{
        ASSERT_EQ(a->format, b->format);
        ASSERT_TRUE(str_eq(a->compatible, b->compatible));
        ASSERT_TRUE(str_eq(a->version_str, b->version_str));
        ASSERT_TRUE(version_eq(&a->version, &b->version));
        ASSERT_TRUE(str_eq(a->min_version_str, b->min_version_str));
        if (a->min_version_str)
                ASSERT_TRUE(version_eq(&a->min_version, &b->min_version));
        ASSERT_TRUE(str_eq(a->build, b->build));
        ASSERT_TRUE(str_eq(a->description, b->description));
        ASSERT_EQ(a->has_security, b->has_security);
        if (a->has_security)
                ASSERT_EQ(a->security_type, b->security_type);
        ASSERT_EQ(a->n_advisories, b->n_advisories);
        for (size_t i = 0; i < a->n_advisories; i++)
                ASSERT_STREQ(a->advisories[i], b->advisories[i]);
        ASSERT_TRUE(str_eq(a->security_summary, b->security_summary));
        ASSERT_TRUE(str_eq(a->support_end, b->support_end));
        ASSERT_TRUE(str_eq(a->support_url, b->support_url));
        ASSERT_EQ(a->reboot, b->reboot);
        ASSERT_EQ(a->n_payloads, b->n_payloads);
        for (size_t i = 0; i < a->n_payloads; i++) {
                const ManifestPayload *p = &a->payloads[i], *q = &b->payloads[i];
                ASSERT_STREQ(p->name, q->name);
                ASSERT_STREQ(p->file, q->file);
                ASSERT_STREQ(p->handler, q->handler);
                ASSERT_TRUE(str_eq(p->slot_class, q->slot_class));
                ASSERT_TRUE(str_eq(p->target, q->target));
                ASSERT_TRUE(p->size == q->size);
                ASSERT_EQ(p->has_digest, q->has_digest);
                ASSERT_TRUE(memcmp(p->sha256, q->sha256, sizeof(p->sha256)) == 0);
                ASSERT_EQ(p->compression, q->compression);
                ASSERT_EQ(p->has_installed_size, q->has_installed_size);
                ASSERT_TRUE(p->installed_size == q->installed_size);
        }
}

TEST(valid_full)
{
        _cleanup_(manifest_freep) Manifest *m = parse_ok(VALID, strlen(VALID), 0);
        uint8_t sha_a[32];

        ASSERT_EQ(m->format, 1);
        ASSERT_STREQ(m->compatible, "acme-gw");
        ASSERT_STREQ(m->version_str, "2.1.0-rc.1+build.7");
        ASSERT_EQ(m->version.major, 2);
        ASSERT_EQ(m->version.minor, 1);
        ASSERT_EQ(m->version.patch, 0);
        ASSERT_STREQ(m->version.prerelease, "rc.1");
        ASSERT_STREQ(m->version.build, "build.7");
        ASSERT_STREQ(m->min_version_str, "1.4.0");
        ASSERT_EQ(m->min_version.minor, 4);
        ASSERT_STREQ(m->build, "2026-11-25T10:00:00.5+01:00");
        ASSERT_STREQ(m->description, "Quarterly update");
        ASSERT_TRUE(m->has_security);
        ASSERT_EQ(m->security_type, SECURITY_TYPE_MIXED);
        ASSERT_EQ(m->n_advisories, 2);
        ASSERT_STREQ(m->advisories[0], "CVE-2026-0001");
        ASSERT_STREQ(m->advisories[1], "GHSA-abcd-efgh-ijkl");
        ASSERT_STREQ(m->security_summary, "Fixes two flaws");
        ASSERT_STREQ(m->support_end, "2030-12-31");
        ASSERT_STREQ(m->support_url, "https://acme.example/support");
        ASSERT_FALSE(m->reboot);
        ASSERT_EQ(m->n_payloads, 3);

        const ManifestPayload *p = &m->payloads[0];
        ASSERT_STREQ(p->name, "rootfs");
        ASSERT_STREQ(p->file, "rootfs.ext4.zst");
        ASSERT_STREQ(p->handler, "raw");
        ASSERT_STREQ(p->slot_class, "rootfs");
        ASSERT_TRUE(p->target == NULL);
        ASSERT_EQ(p->size, 1000);
        ASSERT_TRUE(p->has_digest);
        ASSERT_OK(hex_decode(SHA_A, sha_a, sizeof(sha_a)));
        ASSERT_TRUE(memcmp(p->sha256, sha_a, 32) == 0);
        ASSERT_EQ(p->sha256[0], 0x01);
        ASSERT_EQ(p->sha256[31], 0xef);
        ASSERT_EQ(p->compression, COMPRESSION_ZSTD);
        ASSERT_TRUE(p->has_installed_size);
        ASSERT_EQ(p->installed_size, 4096);

        p = &m->payloads[1];
        ASSERT_STREQ(p->handler, "archive");
        ASSERT_TRUE(p->slot_class == NULL);
        ASSERT_STREQ(p->target, "/opt/app");
        ASSERT_EQ(p->compression, COMPRESSION_NONE);
        ASSERT_TRUE(p->has_installed_size); /* defaults to size when uncompressed */
        ASSERT_EQ(p->installed_size, 2048);
        ASSERT_EQ(p->sha256[0], 0xaa);

        p = &m->payloads[2];
        ASSERT_STREQ(p->handler, "exec:install-conf");
        ASSERT_EQ(p->size, 0);
        ASSERT_TRUE(p->has_installed_size);
        ASSERT_EQ(p->installed_size, 0);
}

TEST(valid_minimal_defaults)
{
        _cleanup_(manifest_freep) Manifest *m = parse_ok(MINIMAL, strlen(MINIMAL), 0);

        ASSERT_TRUE(m->min_version_str == NULL);
        ASSERT_TRUE(m->description == NULL);
        ASSERT_FALSE(m->has_security);
        ASSERT_EQ(m->n_advisories, 0);
        ASSERT_TRUE(m->security_summary == NULL);
        ASSERT_TRUE(m->support_end == NULL);
        ASSERT_TRUE(m->support_url == NULL);
        ASSERT_TRUE(m->reboot); /* default */
        ASSERT_EQ(m->n_payloads, 1);
        ASSERT_EQ(m->payloads[0].installed_size, 5);
}

/* Each row keeps the document a manifest except for the one thing it changes. */
TEST(valid_variants)
{
        static const struct {
                const char *from, *to;
        } cases[] = {
                { "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:00:00Z\"" },
                { "\"2026-11-25T10:00:00.5+01:00\"", "\"2028-02-29T23:59:59.123456789-12:30\"" },
                { "\"2026-11-25T10:00:00.5+01:00\"", "\"2000-02-29T00:00:00+00:00\"" },
                { "\"2026-11-25T10:00:00.5+01:00\"", "\"2016-12-31T23:59:60Z\"" }, /* leap second */
                { "\"2030-12-31\"", "\"2032-02-29\"" },
                { "\"2030-12-31\"", "\"2400-02-29\"" },
                { "\"mixed\"", "\"security\"" },
                { "\"mixed\"", "\"feature\"" },
                { "\"advisories\": [\"CVE-2026-0001\", \"GHSA-abcd-efgh-ijkl\"],", "\"advisories\": []," },
                { "\"advisories\": [\"CVE-2026-0001\", \"GHSA-abcd-efgh-ijkl\"],", "" },
                { "\"advisories\": [\"CVE-2026-0001\", \"GHSA-abcd-efgh-ijkl\"],",
                  "\"advisories\": [\"!~\"]," },
                { ",\n    \"summary\": \"Fixes two flaws\"", "" },
                { ", \"url\": \"https://acme.example/support\"", "" },
                { "\"reboot\": false,", "\"reboot\": true," },
                { "\"description\": \"Quarterly update\",", "\"description\": \"\"," },
                { "\"description\": \"Quarterly update\",",
                  "\"description\": \"caf\\u00e9 \\ud83d\\ude00 / \\\"q\\\"\"," },
                { "\"compatible\": \"acme-gw\"", "\"compatible\": \"Acme_GW.v2+rev-3\"" },
                { "\"handler\": \"raw\"", "\"handler\": \"my_plugin-2\"" },
                { "\"handler\": \"raw\"", "\"handler\": \"file\"" },
                { "\"handler\": \"raw\"", "\"handler\": \"exec:Flash.v2_tool-x\"" },
                { "\"target\": \"/opt/app\"", "\"target\": \"/opt/..app/x..\"" },
                { "\"target\": \"/opt/app\"", "\"target\": \"/\"" },
                { "\"target\": \"/opt/app\"", "\"target\": \"/opt/./app//\"" },
                { "\"file\": \"app.tar\"", "\"file\": \"..app\"" },
                { "\"file\": \"app.tar\"", "\"file\": \"manifest.json.bak\"" },
                { "\"file\": \"app.tar\"", "\"file\": \"App Tar (1).tar\"" },
                { "\"slot_class\": \"rootfs\"", "\"slot_class\": \"boot_a-b\"" },
                { "\"compression\": \"zstd\"", "\"compression\": \"xz\"" },
                { "\"compression\": \"zstd\"", "\"compression\": \"gzip\"" },
                { "\"compression\": \"zstd\", \"installed_size\": 4096",
                  "\"compression\": \"gzip\", \"installed_size\": 0" },
                { "\"size\": 2048, \"sha256\": \"" SHA_B "\"",
                  "\"size\": 2048, \"sha256\": \"" SHA_B "\", \"installed_size\": 2048" },
                { "\"size\": 1000,", "\"size\": 70368744177664," }, /* MANIFEST_PAYLOAD_SIZE_MAX */
                { "\"installed_size\": 4096", "\"installed_size\": 70368744177664" },
                { "\"size\": 0,", "\"size\": -0," },
                { "\"format\": 1,", "\"format\" :\t1 ,\r\n" },
                { "\"min_version\": \"1.4.0\",", "" },
                { "\"min_version\": \"1.4.0\",",
                  "\"min_version\": \"3.0.0\"," }, /* not compared with version */
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *doc = subst(VALID, cases[i].from, cases[i].to);
                Manifest *m = NULL;
                UpkErr e = {};
                int r = manifest_parse(doc, strlen(doc), 0, &m, &e);
                if (r < 0)
                        test_fail("variant %zu (%s): %d %s", i, cases[i].to, r, e.msg);
                manifest_free(m);
        }
}

TEST(broken)
{
        static const struct {
                const char *label, *from, *to, *substr;
        } cases[] = {
                /* unknown keys */
                { "unknown top", "\"format\": 1,", "\"format\": 1, \"foo\": 1,",
                  "unknown key \"foo\" at top level" },
                { "unknown security", "\"type\": \"mixed\",", "\"type\": \"mixed\", \"severity\": 3,",
                  "unknown key \"severity\" in security" },
                { "unknown support", "\"end\": \"2030-12-31\",",
                  "\"end\": \"2030-12-31\", \"phone\": \"1\",", "unknown key \"phone\" in support" },
                { "unknown payload", "\"handler\": \"archive\",", "\"handler\": \"archive\", \"mode\": 420,",
                  "unknown key \"mode\" in payloads[1]" },
                { "unknown key quoted", "\"format\": 1,", "\"format\": 1, \"a\\\"b\\nc\": 1,",
                  "unknown key \"a?b?c\" at top level" },
                /* missing required keys */
                { "missing format", "  \"format\": 1,\n", "", "missing required key \"format\"" },
                { "missing compatible", "  \"compatible\": \"acme-gw\",\n", "",
                  "manifest: missing required key \"compatible\"" },
                { "missing version", "  \"version\": \"2.1.0-rc.1+build.7\",\n", "",
                  "missing required key \"version\"" },
                { "missing build", "  \"build\": \"2026-11-25T10:00:00.5+01:00\",\n", "",
                  "missing required key \"build\"" },
                { "missing security.type", "\"type\": \"mixed\",\n", "",
                  "security: missing required key \"type\"" },
                { "missing support.end", "{\"end\": \"2030-12-31\", ", "{",
                  "support: missing required key \"end\"" },
                { "missing name", "{\"name\": \"app\", ", "{",
                  "payloads[1]: missing required key \"name\"" },
                { "missing file", "\"file\": \"app.tar\", ", "",
                  "payloads[1]: missing required key \"file\"" },
                { "missing handler", "\"handler\": \"archive\", ", "",
                  "payloads[1]: missing required key \"handler\"" },
                { "missing size", "\"size\": 1000, ", "", "payloads[0]: missing required key \"size\"" },
                { "missing sha256", ", \"sha256\": \"" SHA_B "\"", "",
                  "payloads[1]: missing required key \"sha256\"" },
                { "neither slot nor target", "\"target\": \"/opt/app\",", "",
                  "payloads[1]: missing required key \"slot_class\" or \"target\"" },
                { "both slot and target", "\"target\": \"/opt/app\",",
                  "\"target\": \"/opt/app\", \"slot_class\": \"x\",",
                  "payloads[1]: both \"slot_class\" and \"target\"" },
                /* wrong types */
                { "format string", "\"format\": 1,", "\"format\": \"1\",", "format: expected an integer" },
                { "format float", "\"format\": 1,", "\"format\": 1.0,", "format: expected an integer" },
                { "format null", "\"format\": 1,", "\"format\": null,", "format: expected an integer" },
                { "format 3", "\"format\": 1,", "\"format\": 3,", "format: unsupported format 3" },
                /* format 2 wants its own keys (test-chunk-index.c has its cases) */
                { "format 2 with format-1 keys", "\"format\": 1,", "\"format\": 2,", "format 2" },
                { "format 0", "\"format\": 1,", "\"format\": 0,", "unsupported format 0" },
                { "format -1", "\"format\": 1,", "\"format\": -1,", "unsupported format -1" },
                { "format huge", "\"format\": 1,", "\"format\": 18446744073709551617,",
                  "unsupported format 18446744073709551615" },
                { "format 3 unknown keys", "\"format\": 1,", "\"format\": 3, \"new\": 1,",
                  "unsupported format 3" },
                { "compatible number", "\"compatible\": \"acme-gw\"", "\"compatible\": 7",
                  "compatible: expected a string" },
                { "version number", "\"version\": \"2.1.0-rc.1+build.7\"", "\"version\": 2",
                  "version: expected a string" },
                { "min_version array", "\"min_version\": \"1.4.0\"", "\"min_version\": [1,4,0]",
                  "min_version: expected a string" },
                { "build number", "\"build\": \"2026-11-25T10:00:00.5+01:00\"", "\"build\": 1764064800",
                  "build: expected a string" },
                { "description object", "\"description\": \"Quarterly update\"", "\"description\": {}",
                  "description: expected a string" },
                { "security type number", "\"type\": \"mixed\"", "\"type\": 1",
                  "security.type: expected a string" },
                { "advisories string", "[\"CVE-2026-0001\", \"GHSA-abcd-efgh-ijkl\"]", "\"CVE-2026-0001\"",
                  "security.advisories: expected an array" },
                { "advisory number", "[\"CVE-2026-0001\", \"GHSA-abcd-efgh-ijkl\"]",
                  "[\"CVE-2026-0001\", 7]", "security.advisories[1]: expected a string" },
                { "summary bool", "\"summary\": \"Fixes two flaws\"", "\"summary\": true",
                  "security.summary: expected a string" },
                { "support array",
                  "\"support\": {\"end\": \"2030-12-31\", \"url\": \"https://acme.example/support\"}",
                  "\"support\": [\"2030-12-31\"]", "support: expected an object" },
                { "support end number", "\"end\": \"2030-12-31\"", "\"end\": 20301231",
                  "support.end: expected a string" },
                { "support url number", "\"url\": \"https://acme.example/support\"", "\"url\": 443",
                  "support.url: expected a string" },
                { "reboot string", "\"reboot\": false", "\"reboot\": \"false\"",
                  "reboot: expected a boolean" },
                { "reboot number", "\"reboot\": false", "\"reboot\": 0", "reboot: expected a boolean" },
                { "reboot null", "\"reboot\": false", "\"reboot\": null", "reboot: expected a boolean" },
                { "payload not object", "\"payloads\": [", "\"payloads\": [1,",
                  "payloads[0]: expected an object" },
                { "payload null", "\"payloads\": [", "\"payloads\": [null,",
                  "payloads[0]: expected an object" },
                { "name number", "\"name\": \"app\"", "\"name\": 5", "payloads[1].name: expected a string" },
                { "file number", "\"file\": \"app.tar\"", "\"file\": 5",
                  "payloads[1].file: expected a string" },
                { "handler number", "\"handler\": \"raw\"", "\"handler\": 1",
                  "payloads[0].handler: expected a string" },
                { "slot_class number", "\"slot_class\": \"rootfs\"", "\"slot_class\": 1",
                  "payloads[0].slot_class: expected a string" },
                { "target array", "\"target\": \"/opt/app\"", "\"target\": [\"/opt/app\"]",
                  "payloads[1].target: expected a string" },
                { "sha256 number", "\"sha256\": \"" SHA_B "\"", "\"sha256\": 0",
                  "payloads[1].sha256: expected a string" },
                { "compression number", "\"compression\": \"zstd\"", "\"compression\": 3",
                  "payloads[0].compression: expected a string" },
                /* bad values */
                { "compatible empty", "\"compatible\": \"acme-gw\"", "\"compatible\": \"\"",
                  "compatible \"\":" },
                { "compatible space", "\"compatible\": \"acme-gw\"", "\"compatible\": \"acme gw\"",
                  "compatible \"acme gw\":" },
                { "compatible slash", "\"compatible\": \"acme-gw\"", "\"compatible\": \"acme/gw\"",
                  "compatible \"acme/gw\":" },
                { "version 1.2", "\"version\": \"2.1.0-rc.1+build.7\"", "\"version\": \"1.2\"",
                  "manifest: version \"1.2\": not a semantic version" },
                { "version v", "\"version\": \"2.1.0-rc.1+build.7\"", "\"version\": \"v2.1.0\"",
                  "version \"v2.1.0\": not a semantic version" },
                { "version leading zero", "\"version\": \"2.1.0-rc.1+build.7\"", "\"version\": \"2.01.0\"",
                  "version \"2.01.0\": not a semantic version" },
                { "min_version bad", "\"min_version\": \"1.4.0\"", "\"min_version\": \"1.4.0-\"",
                  "min_version \"1.4.0-\": not a semantic version" },
                { "build no zone", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:00:00\"",
                  "build \"2026-11-25T10:00:00\": not an RFC 3339" },
                { "build before 1970", "\"2026-11-25T10:00:00.5+01:00\"", "\"1969-07-20T20:17:40Z\"",
                  "build \"1969-07-20T20:17:40Z\": not an RFC 3339 date and time like 2026-11-25T10:00:00Z "
                  "(1970 "
                  "or later)" },
                { "build space", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25 10:00:00Z\"",
                  "build \"2026-11-25 10:00:00Z\"" },
                { "build lower t", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25t10:00:00z\"",
                  "build \"2026-11-25t10:00:00z\"" },
                { "build hour 24", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T24:00:00Z\"",
                  "build \"2026-11-25T24:00:00Z\"" },
                { "build minute 60", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:60:00Z\"",
                  "build \"" },
                { "build second 61", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:00:61Z\"",
                  "build \"" },
                { "build feb 29", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-02-29T10:00:00Z\"",
                  "build \"2026-02-29" },
                { "build 1900-02-29", "\"2026-11-25T10:00:00.5+01:00\"", "\"1900-02-29T10:00:00Z\"",
                  "build \"1900-02-29" },
                { "build month 13", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-13-01T10:00:00Z\"",
                  "build \"2026-13-01" },
                { "build month 0", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-00-01T10:00:00Z\"",
                  "build \"2026-00-01" },
                { "build day 0", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-00T10:00:00Z\"",
                  "build \"2026-11-00" },
                { "build apr 31", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-04-31T10:00:00Z\"",
                  "build \"2026-04-31" },
                { "build empty frac", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:00:00.Z\"",
                  "build \"" },
                { "build short offset", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:00:00+1:00\"",
                  "build \"" },
                { "build offset 24h", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:00:00+24:00\"",
                  "build \"" },
                { "build offset no colon", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:00:00+0100\"",
                  "build \"" },
                { "build trailing", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25T10:00:00Zx\"",
                  "build \"" },
                { "build date only", "\"2026-11-25T10:00:00.5+01:00\"", "\"2026-11-25\"",
                  "build \"2026-11-25\"" },
                { "build short year", "\"2026-11-25T10:00:00.5+01:00\"", "\"226-11-25T10:00:00Z\"",
                  "build \"" },
                { "build too long", "\"2026-11-25T10:00:00.5+01:00\"",
                  "\"2026-11-25T10:00:00.12345678901234567890123456789012345678901234567890Z\"",
                  "build \"" },
                { "security type", "\"type\": \"mixed\"", "\"type\": \"bugfix\"",
                  "security.type \"bugfix\": expected security, feature or mixed" },
                { "security type case", "\"type\": \"mixed\"", "\"type\": \"Mixed\"",
                  "security.type \"Mixed\"" },
                { "advisory space", "\"GHSA-abcd-efgh-ijkl\"", "\"GHSA abcd\"",
                  "security.advisories[1] \"GHSA abcd\"" },
                { "advisory empty", "\"GHSA-abcd-efgh-ijkl\"", "\"\"", "security.advisories[1] \"\"" },
                { "advisory non-ascii", "\"GHSA-abcd-efgh-ijkl\"", "\"CVE-\\u00e9\"",
                  "security.advisories[1]" },
                { "advisory tab", "\"GHSA-abcd-efgh-ijkl\"", "\"CVE\\t1\"", "security.advisories[1]" },
                { "support end feb 30", "\"2030-12-31\"", "\"2026-02-30\"",
                  "support.end \"2026-02-30\": not a calendar date" },
                { "support end 2100-02-29", "\"2030-12-31\"", "\"2100-02-29\"",
                  "support.end \"2100-02-29\"" },
                { "support end short", "\"2030-12-31\"", "\"2030-1-31\"", "support.end \"2030-1-31\"" },
                /* The one date parser is strict: nothing before 1970 (a manifest took any year before). */
                { "support end 1969", "\"2030-12-31\"", "\"1969-12-31\"",
                  "support.end \"1969-12-31\": not a calendar date like 2030-12-31 (1970 or later)" },
                { "support end year 0", "\"2030-12-31\"", "\"0000-01-01\"", "support.end \"0000-01-01\"" },
                { "support end time", "\"2030-12-31\"", "\"2030-12-31T00:00:00Z\"",
                  "support.end \"2030-12-31T00:00:00Z\"" },
                { "support end slashes", "\"2030-12-31\"", "\"2030/12/31\"", "support.end \"2030/12/31\"" },
                { "name empty", "\"name\": \"app\"", "\"name\": \"\"", "payloads[1].name \"\":" },
                { "name space", "\"name\": \"app\"", "\"name\": \"my app\"",
                  "payloads[1].name \"my app\":" },
                { "name slash", "\"name\": \"app\"", "\"name\": \"a/b\"", "payloads[1].name \"a/b\":" },
                { "name twice", "\"name\": \"app\"", "\"name\": \"rootfs\"",
                  "payloads[1].name \"rootfs\" is used twice" },
                { "name twice later", "\"name\": \"conf\"", "\"name\": \"app\"",
                  "payloads[2].name \"app\" is used twice" },
                { "file twice", "\"file\": \"gw.conf\"", "\"file\": \"rootfs.ext4.zst\"",
                  "payloads[2].file \"rootfs.ext4.zst\" is used twice" },
                { "file slash", "\"file\": \"app.tar\"", "\"file\": \"dir/app.tar\"",
                  "payloads[1].file \"dir/app.tar\": not a plain" },
                { "file dotdot", "\"file\": \"app.tar\"", "\"file\": \"..\"",
                  "payloads[1].file \"..\": not a plain" },
                { "file dotdot slash", "\"file\": \"app.tar\"", "\"file\": \"../app.tar\"",
                  "payloads[1].file \"../app.tar\"" },
                { "file dot", "\"file\": \"app.tar\"", "\"file\": \".\"",
                  "payloads[1].file \".\": not a plain" },
                { "file absolute", "\"file\": \"app.tar\"", "\"file\": \"/app.tar\"",
                  "payloads[1].file \"/app.tar\": not a plain" },
                { "file empty", "\"file\": \"app.tar\"", "\"file\": \"\"",
                  "payloads[1].file \"\": not a plain" },
                { "file control", "\"file\": \"app.tar\"", "\"file\": \"app\\n.tar\"",
                  "payloads[1].file \"app?.tar\"" },
                { "file manifest", "\"file\": \"app.tar\"", "\"file\": \"manifest.json\"",
                  "payloads[1].file \"manifest.json\": the name is reserved" },
                { "file manifest sig", "\"file\": \"app.tar\"", "\"file\": \"manifest.json.sig\"",
                  "payloads[1].file \"manifest.json.sig\": the name is reserved" },
                { "handler upper", "\"handler\": \"raw\"", "\"handler\": \"Raw\"",
                  "payloads[0].handler \"Raw\"" },
                { "handler empty", "\"handler\": \"raw\"", "\"handler\": \"\"", "payloads[0].handler \"\"" },
                { "handler exec empty", "\"handler\": \"raw\"", "\"handler\": \"exec:\"",
                  "payloads[0].handler \"exec:\"" },
                { "handler exec dotdot", "\"handler\": \"raw\"", "\"handler\": \"exec:..\"",
                  "payloads[0].handler \"exec:..\"" },
                { "handler exec hidden", "\"handler\": \"raw\"", "\"handler\": \"exec:.hidden\"",
                  "payloads[0].handler \"exec:.hidden\"" },
                { "handler exec dotdot name", "\"handler\": \"raw\"", "\"handler\": \"exec:..x\"",
                  "payloads[0].handler \"exec:..x\"" },
                { "handler exec path", "\"handler\": \"raw\"", "\"handler\": \"exec:../bin/sh\"",
                  "payloads[0].handler \"exec:../bin/sh\"" },
                { "handler exec space", "\"handler\": \"raw\"", "\"handler\": \"exec:a b\"",
                  "payloads[0].handler \"exec:a b\"" },
                { "handler plugin dot", "\"handler\": \"raw\"", "\"handler\": \"my.plugin\"",
                  "payloads[0].handler \"my.plugin\"" },
                { "handler path", "\"handler\": \"raw\"", "\"handler\": \"/usr/bin/dd\"",
                  "payloads[0].handler \"/usr/bin/dd\"" },
                { "slot_class upper", "\"slot_class\": \"rootfs\"", "\"slot_class\": \"RootFS\"",
                  "payloads[0].slot_class \"RootFS\"" },
                { "slot_class empty", "\"slot_class\": \"rootfs\"", "\"slot_class\": \"\"",
                  "payloads[0].slot_class \"\"" },
                { "slot_class dot", "\"slot_class\": \"rootfs\"", "\"slot_class\": \"root.fs\"",
                  "payloads[0].slot_class \"root.fs\"" },
                { "target relative", "\"target\": \"/opt/app\"", "\"target\": \"opt/app\"",
                  "payloads[1].target \"opt/app\"" },
                { "target empty", "\"target\": \"/opt/app\"", "\"target\": \"\"",
                  "payloads[1].target \"\"" },
                { "target dotdot", "\"target\": \"/opt/app\"", "\"target\": \"/opt/../etc\"",
                  "payloads[1].target \"/opt/../etc\"" },
                { "target dotdot end", "\"target\": \"/opt/app\"", "\"target\": \"/opt/..\"",
                  "payloads[1].target \"/opt/..\"" },
                { "target control", "\"target\": \"/opt/app\"", "\"target\": \"/opt/a\\u0001pp\"",
                  "payloads[1].target \"/opt/a?pp\"" },
                { "target del", "\"target\": \"/opt/app\"", "\"target\": \"/opt/a\\u007fpp\"",
                  "payloads[1].target" },
                { "size negative", "\"size\": 1000", "\"size\": -1",
                  "payloads[0].size: must not be negative" },
                { "size very negative", "\"size\": 1000", "\"size\": -99999999999999999999",
                  "payloads[0].size: must not be negative" },
                { "size too large", "\"size\": 1000", "\"size\": 70368744177665",
                  "payloads[0].size: 70368744177665 is larger than the maximum 70368744177664" },
                { "size int64 max", "\"size\": 1000", "\"size\": 9223372036854775807",
                  "payloads[0].size: 9223372036854775807 is larger" },
                { "size uint64 max", "\"size\": 1000", "\"size\": 18446744073709551615",
                  "payloads[0].size: 18446744073709551615 is larger" },
                { "size past uint64", "\"size\": 1000", "\"size\": 99999999999999999999",
                  "payloads[0].size: 18446744073709551615 is larger" },
                { "size float", "\"size\": 1000", "\"size\": 1000.0",
                  "payloads[0].size: expected an integer" },
                { "size exponent", "\"size\": 1000", "\"size\": 1e3",
                  "payloads[0].size: expected an integer" },
                { "size string", "\"size\": 1000", "\"size\": \"1000\"",
                  "payloads[0].size: expected an integer" },
                { "size bool", "\"size\": 1000", "\"size\": true", "payloads[0].size: expected an integer" },
                { "size NaN", "\"size\": 1000", "\"size\": NaN", "payloads[0].size: expected an integer" },
                { "sha256 upper", "\"sha256\": \"" SHA_B "\"",
                  "\"sha256\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
                  "manifest: payloads[1].sha256: expected 64 lower-case hex digits" },
                { "sha256 short", "\"sha256\": \"" SHA_B "\"", "\"sha256\": \"aaaa\"",
                  "payloads[1].sha256: expected 64 lower-case hex" },
                { "sha256 63", "\"sha256\": \"" SHA_B "\"",
                  "\"sha256\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                  "payloads[1].sha256: expected 64" },
                { "sha256 65", "\"sha256\": \"" SHA_B "\"", "\"sha256\": \"" SHA_B "a\"",
                  "payloads[1].sha256: expected 64" },
                { "sha256 non-hex", "\"sha256\": \"" SHA_B "\"", "\"sha256\": \"g" SHA_B "\"",
                  "payloads[1].sha256: expected 64" },
                { "sha256 empty", "\"sha256\": \"" SHA_B "\"", "\"sha256\": \"\"",
                  "payloads[1].sha256: expected 64" },
                { "compression unknown", "\"compression\": \"zstd\"", "\"compression\": \"lz4\"",
                  "payloads[0].compression \"lz4\": expected zstd, xz or gzip" },
                { "compression none", "\"compression\": \"zstd\"", "\"compression\": \"none\"",
                  "payloads[0].compression \"none\"" },
                { "compression case", "\"compression\": \"zstd\"", "\"compression\": \"ZSTD\"",
                  "payloads[0].compression \"ZSTD\"" },
                { "compressed no installed_size", ", \"installed_size\": 4096", "",
                  "payloads[0]: missing required key \"installed_size\"" },
                { "installed_size differs", "\"sha256\": \"" SHA_B "\"",
                  "\"sha256\": \"" SHA_B "\", \"installed_size\": 2047",
                  "payloads[1].installed_size: 2047 differs from size 2048" },
                { "installed_size differs zero", "\"installed_size\": 0}", "\"installed_size\": 1}",
                  "payloads[2].installed_size: 1 differs from size 0" },
                { "installed_size negative", "\"installed_size\": 4096", "\"installed_size\": -4096",
                  "payloads[0].installed_size: must not be negative" },
                { "installed_size float", "\"installed_size\": 4096", "\"installed_size\": 4096.5",
                  "payloads[0].installed_size: expected an integer" },
                { "installed_size too large", "\"installed_size\": 4096",
                  "\"installed_size\": 70368744177665",
                  "payloads[0].installed_size: 70368744177665 is larger" },
                /* NUL and JSON-level trouble */
                { "NUL in value", "\"Quarterly update\"", "\"Quarterly\\u0000update\"",
                  "description: contains a NUL character" },
                { "NUL in advisory", "\"GHSA-abcd-efgh-ijkl\"", "\"GHSA\\u0000\"",
                  "security.advisories[1]: contains a NUL" },
                { "NUL in name", "\"name\": \"app\"", "\"name\": \"app\\u0000x\"",
                  "payloads[1].name: contains a NUL" },
                { "NUL in sha256", "\"sha256\": \"" SHA_B "\"", "\"sha256\": \"\\u0000" SHA_B "\"",
                  "payloads[1].sha256" },
                { "NUL in key", "\"description\":", "\"description\\u0000x\":",
                  "a key contains a NUL character (\\u0000)" },
                { "escaped backslash u0000", "\"Quarterly update\"", "\"Quarterly\\\\u0000update\"",
                  "" }, /* valid: see below */
                { "duplicate top", "\"format\": 1,", "\"format\": 1, \"format\": 1,",
                  "duplicate key \"format\" at top level" },
                { "duplicate late", "\"reboot\": false,", "\"reboot\": false, \"compatible\": \"other\",",
                  "duplicate key \"compatible\" at top level" },
                { "duplicate escaped", "\"format\": 1,", "\"format\": 1, \"\\u0066ormat\": 1,",
                  "duplicate key \"format\" at top level" },
                { "duplicate security", "\"type\": \"mixed\",",
                  "\"type\": \"mixed\", \"type\": \"feature\",", "duplicate key \"type\" in security" },
                { "duplicate support", "\"end\": \"2030-12-31\",",
                  "\"end\": \"2030-12-31\", \"end\": \"2031-01-01\",", "duplicate key \"end\" in support" },
                { "duplicate payload", "\"size\": 2048,", "\"size\": 2048, \"size\": 2048,",
                  "duplicate key \"size\" in payloads[1]" },
                { "duplicate payloads key", "\"reboot\": false,", "\"reboot\": false, \"payloads\": [],",
                  "duplicate key \"payloads\" at top level" },
                { "duplicate hidden", "\"description\": \"Quarterly update\",",
                  "\"description\": {\"a\": {\"b\": 1, \"b\": 2}}, \"description\": \"x\",",
                  "duplicate key \"description\" at top level" },
                { "duplicate after colon in string", "\"Quarterly update\"", "\"a:b, \\\"c\\\": {\"",
                  "" }, /* valid: colons and braces inside strings do not count */
                { "single quotes", "\"format\": 1,", "'format': 1,",
                  "not valid JSON at byte 4: single-quoted string" },
                { "raw control char", "\"Quarterly update\"", "\"Quarterly\tupdate\"",
                  "control character in a string" },
                { "raw newline in key", "\"description\"", "\"descr\niption\"",
                  "control character in a string" },
                { "comment", "\"format\": 1,", "/* c */ \"format\": 1,", "not valid JSON at byte 4:" },
                { "line comment", "\"format\": 1,", "\"format\": 1, // c\n", "not valid JSON" },
                { "trailing comma", "\"installed_size\": 0}", "\"installed_size\": 0},", "not valid JSON" },
                { "missing comma", "\"format\": 1,", "\"format\": 1", "not valid JSON" },
                { "invalid utf-8", "\"Quarterly update\"", "\"Quarterly \xff update\"", "invalid utf-8" },
                { "overlong utf-8", "\"Quarterly update\"", "\"Quarterly \xc0\xaf update\"",
                  "invalid UTF-8" },
                { "overlong 3-byte", "\"Quarterly update\"", "\"Quarterly \xe0\x80\xaf update\"",
                  "invalid" },
                { "utf-8 surrogate", "\"Quarterly update\"", "\"Quarterly \xed\xa0\x80 update\"",
                  "invalid" },
                { "utf-8 past 10FFFF", "\"Quarterly update\"", "\"Quarterly \xf4\x90\x80\x80 update\"",
                  "invalid" },
                { "utf-8 truncated", "\"Quarterly update\"", "\"Quarterly \xe2\x82\"", "invalid" },
                { "utf-8 valid 4-byte", "\"Quarterly update\"",
                  "\"Quarterly \xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9\"", "" },
                { "bare word", "\"format\": 1,", "\"format\": one,", "not valid JSON" },
                { "True", "\"reboot\": false", "\"reboot\": False", "not valid JSON" },
                { "leading zero number", "\"size\": 1000", "\"size\": 01000", "not valid JSON" },
                { "plus number", "\"size\": 1000", "\"size\": +1000", "not valid JSON" },
                { "hex number", "\"size\": 1000", "\"size\": 0x10", "not valid JSON" },
                { "depth bomb", "\"description\": \"Quarterly update\"",
                  "\"description\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
                  "nesting too deep" },
                { "depth bomb objects", "\"description\": \"Quarterly update\"",
                  "\"description\": {\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}",
                  "nesting too deep" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *doc = subst(VALID, cases[i].from, cases[i].to);
                if (isempty(cases[i].substr)) {
                        manifest_free(parse_ok(doc, strlen(doc), 0));
                        continue;
                }
                expect_bad(cases[i].label, doc, 0, cases[i].substr);
                /* Template mode relaxes size and sha256 only: every other break stays broken. */
                if (!strstr(cases[i].label, "missing size") && !strstr(cases[i].label, "missing sha256") &&
                    !strstr(cases[i].label, "no installed_size"))
                        expect_bad(cases[i].label, doc, MANIFEST_PARSE_TEMPLATE, cases[i].substr);
        }
}

TEST(broken_documents)
{
        static const struct {
                const char *label, *doc, *substr;
        } cases[] = {
                { "empty", "", "manifest: empty" },
                { "whitespace", " \n\t\r ", "manifest: empty" },
                { "array", "[]", "the top level is not a JSON object" },
                { "string", "\"{}\"", "the top level is not a JSON object" },
                { "number", "1", "the top level is not a JSON object" },
                { "null", "null", "the top level is not a JSON object" },
                { "true", " true", "the top level is not a JSON object" },
                { "BOM", "\xef\xbb\xbf{}", "the top level is not a JSON object" },
                { "truncated", "{\"format\": 1", "not valid JSON at byte 12: unexpected end of data" },
                { "unclosed string", "{\"format", "not valid JSON at byte 8: unexpected end of data" },
                { "lone brace", "{", "not valid JSON at byte 1: unexpected end of data" },
                { "closing only", "{]", "not valid JSON at byte 1:" },
                { "empty object", "{}", "missing required key \"format\"" },
                { "format only", "{\"format\": 1}", "missing required key \"compatible\"" },
                { "no payloads",
                  "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\"}",
                  "manifest: missing required key \"payloads\"" },
                { "empty payloads",
                  "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", "
                  "\"payloads\": []}",
                  "payloads: the list is empty" },
                { "payloads object",
                  "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", "
                  "\"payloads\": {}}",
                  "payloads: expected an array" },
                { "payloads null",
                  "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", "
                  "\"payloads\": null}",
                  "payloads: expected an array" },
                { "security string",
                  "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", "
                  "\"security\": \"yes\", \"payloads\": []}",
                  "security: expected an object" },
                { "two objects", "{\"format\": 1}{\"format\": 1}", "not valid JSON at byte 13:" },
                { "garbage after", "{\"format\": 1} x", "not valid JSON at byte 14:" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                expect_bad(cases[i].label, cases[i].doc, 0, cases[i].substr);

        /* NULL data with size 0 is an empty document, not a crash. */
        expect_bad_len("NULL", NULL, 0, 0, "manifest: empty");
}

TEST(trailing_bytes)
{
        size_t n = strlen(VALID);
        _cleanup_free_ char *doc = malloc(n + 8);
        char want[64];

        ASSERT_TRUE(doc);
        memcpy(doc, VALID, n);

        /* Trailing whitespace is fine. */
        memcpy(doc + n, " \r\n\t", 4);
        manifest_free(parse_ok(doc, n + 4, 0));

        /* A NUL byte after the object: json-c stops there, we do not. */
        memcpy(doc + n, "\0", 1);
        snprintf(want, sizeof(want), "not valid JSON at byte %zu: data after the top-level object", n);
        expect_bad_len("NUL after object", doc, n + 1, 0, want);
        memcpy(doc + n, "  \0  ", 5);
        snprintf(want, sizeof(want), "not valid JSON at byte %zu:", n + 2);
        expect_bad_len("NUL after spaces", doc, n + 5, 0, want);

        /* A NUL byte inside: the document ends early. */
        expect_bad_len("NUL inside", VALID, 40, 0, "not valid JSON");
        memcpy(doc, VALID, n);
        doc[30] = 0;
        expect_bad_len("raw NUL in string", doc, n, 0, "not valid JSON at byte");

        /* `size` is respected: the same bytes cut short are incomplete. */
        expect_bad_len("cut", VALID, n - 3, 0, "unexpected end of data");
        manifest_free(parse_ok(VALID, n - 1, 0)); /* only the final newline dropped */
}

static char *doc_with_padding(size_t total)
{
        size_t n = strlen(MINIMAL);
        char *doc = malloc(total);

        ASSERT_TRUE(doc && total >= n);
        memcpy(doc, MINIMAL, n);
        memset(doc + n, ' ', total - n);
        return doc;
}

TEST(size_limit)
{
        _cleanup_free_ char *at_max = doc_with_padding(MANIFEST_SIZE_MAX);
        _cleanup_free_ char *over = doc_with_padding(MANIFEST_SIZE_MAX + 1);

        manifest_free(parse_ok(at_max, MANIFEST_SIZE_MAX, 0));
        expect_bad_len("1 MiB + 1", over, MANIFEST_SIZE_MAX + 1, 0,
                       "1048577 bytes, more than the maximum of 1048576");
        expect_bad_len("huge", over, SIZE_MAX, 0, "more than the maximum"); /* never read */
}

/* A manifest with n payloads, each with the given extra JSON text. */
static char *doc_with_payloads(size_t n)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        ASSERT_TRUE(f);
        fputs("{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
              "\"2026-01-01T00:00:00Z\", "
              "\"payloads\": [",
              f);
        for (size_t i = 0; i < n; i++)
                fprintf(f,
                        "%s{\"name\": \"p%zu\", \"file\": \"f%zu\", \"handler\": \"raw\", \"slot_class\": "
                        "\"s\", "
                        "\"size\": %zu, \"sha256\": \"" SHA_A "\"}",
                        i ? ", " : "", i, i, i);
        fputs("]}", f);
        ASSERT_TRUE(fclose(f) == 0);
        return buf;
}

TEST(payload_count)
{
        _cleanup_free_ char *max = doc_with_payloads(MANIFEST_PAYLOADS_MAX);
        _cleanup_free_ char *over = doc_with_payloads(MANIFEST_PAYLOADS_MAX + 1);
        _cleanup_(manifest_freep) Manifest *m = parse_ok(max, strlen(max), 0);

        ASSERT_EQ(m->n_payloads, MANIFEST_PAYLOADS_MAX);
        ASSERT_STREQ(m->payloads[MANIFEST_PAYLOADS_MAX - 1].name, "p63");
        ASSERT_EQ(m->payloads[MANIFEST_PAYLOADS_MAX - 1].size, 63);
        expect_bad("65 payloads", over, 0, "payloads: 65 entries, more than the maximum of 64");
}

TEST(duplicate_in_last_payload)
{
        /* Duplicates are found in any of the MANIFEST_PAYLOADS_MAX objects, not just the first few. */
        _cleanup_free_ char *max = doc_with_payloads(MANIFEST_PAYLOADS_MAX);
        _cleanup_free_ char *doc = subst(max, "\"name\": \"p63\",", "\"name\": \"p63\", \"name\": \"p63\",");

        expect_bad("dup in payloads[63]", doc, 0, "duplicate key \"name\" in payloads[63]");
}

static char *repeat(char c, size_t n)
{
        char *s = malloc(n + 1);

        ASSERT_TRUE(s);
        memset(s, c, n);
        s[n] = 0;
        return s;
}

/* Replace `from` in VALID by prefix + n times c + suffix. */
static char *with_long(const char *from, const char *prefix, char c, size_t n, const char *suffix)
{
        _cleanup_free_ char *mid = repeat(c, n);
        _cleanup_free_ char *to = strdup_printf("%s%s%s", prefix, mid, suffix);

        ASSERT_TRUE(to);
        return subst(VALID, from, to);
}

TEST(string_lengths)
{
        static const struct {
                const char *from, *prefix;
                char c;
                size_t max;
                const char *suffix, *substr;
        } cases[] = {
                { "\"acme-gw\"", "\"", 'a', MANIFEST_COMPATIBLE_MAX, "\"",
                  "compatible: longer than 128 bytes" },
                { "\"Quarterly update\"", "\"", 'x', MANIFEST_STRING_MAX, "\"",
                  "description: longer than 4096 bytes" },
                { "\"Fixes two flaws\"", "\"", 'x', MANIFEST_STRING_MAX, "\"",
                  "security.summary: longer than 4096" },
                { "\"https://acme.example/support\"", "\"", 'x', MANIFEST_STRING_MAX, "\"",
                  "support.url: longer than 4096" },
                { "\"GHSA-abcd-efgh-ijkl\"", "\"", 'G', MANIFEST_ADVISORY_MAX, "\"",
                  "security.advisories[1] \"GGG" },
                { "\"name\": \"app\"", "\"name\": \"", 'n', MANIFEST_NAME_MAX, "\"",
                  "payloads[1].name: longer than 64" },
                { "\"file\": \"app.tar\"", "\"file\": \"", 'f', MANIFEST_FILE_MAX, "\"",
                  "payloads[1].file: longer than 100" },
                { "\"handler\": \"archive\"", "\"handler\": \"", 'h', MANIFEST_NAME_MAX, "\"",
                  "payloads[1].handler \"hhh" },
                { "\"handler\": \"archive\"", "\"handler\": \"exec:", 'h', MANIFEST_NAME_MAX, "\"",
                  "payloads[1].handler" },
                { "\"slot_class\": \"rootfs\"", "\"slot_class\": \"", 's', MANIFEST_NAME_MAX, "\"",
                  "payloads[0].slot_class: longer than 64" },
                { "\"target\": \"/opt/app\"", "\"target\": \"/", 't', MANIFEST_PATH_MAX - 1, "\"",
                  "payloads[1].target: longer than 4096" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *ok =
                        with_long(cases[i].from, cases[i].prefix, cases[i].c, cases[i].max, cases[i].suffix);
                _cleanup_free_ char *bad = with_long(cases[i].from, cases[i].prefix, cases[i].c,
                                                     cases[i].max + 1, cases[i].suffix);
                manifest_free(parse_ok(ok, strlen(ok), 0));
                expect_bad(cases[i].from, bad, 0, cases[i].substr);
        }
}

TEST(advisory_count)
{
        char *buf = NULL;
        size_t len = 0;

        for (size_t n = MANIFEST_ADVISORIES_MAX; n <= MANIFEST_ADVISORIES_MAX + 1; n++) {
                FILE *f = open_memstream(&buf, &len);
                ASSERT_TRUE(f);
                fputs("\"advisories\": [", f);
                for (size_t i = 0; i < n; i++)
                        fprintf(f, "%s\"CVE-2026-%zu\"", i ? "," : "", i);
                fputs("],", f);
                ASSERT_TRUE(fclose(f) == 0);
                _cleanup_free_ char *doc =
                        subst(VALID, "\"advisories\": [\"CVE-2026-0001\", \"GHSA-abcd-efgh-ijkl\"],", buf);
                free(buf);
                buf = NULL;
                if (n == MANIFEST_ADVISORIES_MAX) {
                        _cleanup_(manifest_freep) Manifest *m = parse_ok(doc, strlen(doc), 0);
                        ASSERT_EQ(m->n_advisories, MANIFEST_ADVISORIES_MAX);
                        ASSERT_STREQ(m->advisories[255], "CVE-2026-255");
                } else
                        expect_bad("257 advisories", doc, 0,
                                   "security.advisories: 257 entries, more than the maximum of 256");
        }
}

TEST(message_quotes_are_bounded)
{
        _cleanup_free_ char *doc =
                with_long("\"version\": \"2.1.0-rc.1+build.7\"", "\"version\": \"", 'v', 3000, "\"");
        UpkErr e = {};
        Manifest *m = NULL;

        ASSERT_ERR(manifest_parse(doc, strlen(doc), 0, &m, &e), -EBADMSG);
        ASSERT_TRUE(strstr(e.msg, "version \"vvvv"));
        ASSERT_TRUE(strstr(e.msg, "...\": not a semantic version"));
        ASSERT_TRUE(strlen(e.msg) < 200);
}

TEST(no_error_struct)
{
        Manifest *m = NULL;

        ASSERT_ERR(manifest_parse("{}", 2, 0, &m, NULL), -EBADMSG);
        static const char dup[] = "{\"format\": 1, \"format\": 1}";

        ASSERT_ERR(manifest_parse(dup, strlen(dup), 0, &m, NULL), -EBADMSG);
        ASSERT_TRUE(m == NULL);
}

/* ---- templates ---- */

static const char TEMPLATE[] =
        "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
        "\"2026-01-01T00:00:00Z\",\n"
        " \"payloads\": [\n"
        "  {\"name\": \"rootfs\", \"file\": \"rootfs.img.xz\", \"handler\": \"raw\", \"slot_class\": "
        "\"rootfs\",\n"
        "   \"compression\": \"xz\"},\n"
        "  {\"name\": \"app\", \"file\": \"app.tar\", \"handler\": \"archive\", \"target\": \"/opt/app\"},\n"
        "  {\"name\": \"cfg\", \"file\": \"cfg.gz\", \"handler\": \"file\", \"target\": \"/etc/cfg\",\n"
        "   \"compression\": \"gzip\", \"installed_size\": 77},\n"
        "  {\"name\": \"done\", \"file\": \"done\", \"handler\": \"file\", \"target\": \"/etc/done\",\n"
        "   \"size\": 9, \"sha256\": \"" SHA_C "\"}\n"
        " ]}\n";

TEST(template_mode)
{
        _cleanup_(manifest_freep) Manifest *m =
                parse_ok(TEMPLATE, strlen(TEMPLATE), MANIFEST_PARSE_TEMPLATE);
        char *json = (char *)&json;
        size_t size = 4242;

        ASSERT_EQ(m->n_payloads, 4);

        ASSERT_FALSE(m->payloads[0].has_digest);
        ASSERT_EQ(m->payloads[0].size, 0);
        ASSERT_EQ(m->payloads[0].compression, COMPRESSION_XZ);
        ASSERT_FALSE(m->payloads[0].has_installed_size);

        ASSERT_FALSE(m->payloads[1].has_digest);
        ASSERT_EQ(m->payloads[1].compression, COMPRESSION_NONE);
        ASSERT_FALSE(m->payloads[1].has_installed_size); /* size unknown yet */

        ASSERT_FALSE(m->payloads[2].has_digest);
        ASSERT_TRUE(m->payloads[2].has_installed_size);
        ASSERT_EQ(m->payloads[2].installed_size, 77);

        ASSERT_TRUE(m->payloads[3].has_digest);
        ASSERT_EQ(m->payloads[3].size, 9);
        ASSERT_EQ(m->payloads[3].sha256[0], 0xff);
        ASSERT_TRUE(m->payloads[3].has_installed_size);
        ASSERT_EQ(m->payloads[3].installed_size, 9);

        /* Not serialisable while a digest is missing. */
        ASSERT_ERR(manifest_to_json(m, &json, &size), -EINVAL);
        ASSERT_TRUE(json == (char *)&json);
        ASSERT_EQ(size, 4242);

        /* Fill in what `bundle create` would, then it serialises and reads back as a full manifest. */
        for (size_t i = 0; i < 3; i++) {
                ManifestPayload *p = &m->payloads[i];
                p->size = 100 + i;
                memset(p->sha256, (int)i, sizeof(p->sha256));
                p->has_digest = true;
        }
        ASSERT_ERR(manifest_to_json(m, &json, &size), -EINVAL); /* payloads[0] still lacks installed_size */
        m->payloads[0].installed_size = 5000;
        m->payloads[0].has_installed_size = true;
        m->payloads[1].installed_size = m->payloads[1].size;
        m->payloads[1].has_installed_size = true;
        ASSERT_OK(manifest_to_json(m, &json, &size));

        _unused_ _cleanup_free_ char *owned = json;
        _cleanup_(manifest_freep) Manifest *full = parse_ok(json, size, 0);
        assert_manifest_eq(m, full);
}

TEST(template_still_strict)
{
        expect_bad("template without flag", TEMPLATE, 0, "payloads[0]: missing required key \"size\"");

        _cleanup_free_ char *size_only =
                subst(TEMPLATE, "\"target\": \"/opt/app\"}", "\"target\": \"/opt/app\", \"size\": 1}");
        expect_bad("size only", size_only, MANIFEST_PARSE_TEMPLATE,
                   "payloads[1]: missing required key \"sha256\"");

        _cleanup_free_ char *sha_only = subst(TEMPLATE, "\"target\": \"/opt/app\"}",
                                              "\"target\": \"/opt/app\", \"sha256\": \"" SHA_A "\"}");
        expect_bad("sha256 only", sha_only, MANIFEST_PARSE_TEMPLATE,
                   "payloads[1]: missing required key \"size\"");

        _cleanup_free_ char *bad_sha = subst(TEMPLATE, "\"sha256\": \"" SHA_C "\"", "\"sha256\": \"xyz\"");
        expect_bad("bad sha256", bad_sha, MANIFEST_PARSE_TEMPLATE,
                   "payloads[3].sha256: expected 64 lower-case hex digits");

        _cleanup_free_ char *bad_size = subst(TEMPLATE, "\"size\": 9", "\"size\": -9");
        expect_bad("bad size", bad_size, MANIFEST_PARSE_TEMPLATE, "payloads[3].size: must not be negative");

        _cleanup_free_ char *differs =
                subst(TEMPLATE, "\"size\": 9,", "\"size\": 9, \"installed_size\": 10,");
        expect_bad("installed_size differs", differs, MANIFEST_PARSE_TEMPLATE,
                   "payloads[3].installed_size: 10 differs");

        _cleanup_free_ char *unknown =
                subst(TEMPLATE, "\"compression\": \"xz\"", "\"compression\": \"xz\", \"sha1\": \"x\"");
        expect_bad("unknown key", unknown, MANIFEST_PARSE_TEMPLATE, "unknown key \"sha1\" in payloads[0]");

        /* A complete manifest is a valid template too, with the same result. */
        _cleanup_(manifest_freep) Manifest *a = parse_ok(VALID, strlen(VALID), 0);
        _cleanup_(manifest_freep) Manifest *b = parse_ok(VALID, strlen(VALID), MANIFEST_PARSE_TEMPLATE);
        assert_manifest_eq(a, b);
}

/* ---- serialisation ---- */

static char *to_json(const Manifest *m, size_t *ret_size)
{
        char *json = NULL;
        size_t size = 0;

        ASSERT_OK(manifest_to_json(m, &json, &size));
        ASSERT_TRUE(json);
        ASSERT_EQ(size, strlen(json));
        ASSERT_TRUE(size > 0 && json[size - 1] == '\n');
        if (ret_size)
                *ret_size = size;
        return json;
}

TEST(round_trip)
{
        static const char *const docs[] = { VALID, MINIMAL, TEMPLATE };

        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                ManifestParseFlags flags = docs[i] == TEMPLATE ? MANIFEST_PARSE_TEMPLATE : 0;
                _cleanup_(manifest_freep) Manifest *a = parse_ok(docs[i], strlen(docs[i]), flags);
                size_t na, nb;

                if (docs[i] == TEMPLATE) {
                        /* Only the complete payload. */
                        ManifestPayload keep = a->payloads[3];
                        for (size_t j = 0; j < 3; j++) {
                                free(a->payloads[j].name);
                                free(a->payloads[j].file);
                                free(a->payloads[j].handler);
                                free(a->payloads[j].slot_class);
                                free(a->payloads[j].target);
                        }
                        a->payloads[0] = keep;
                        a->n_payloads = 1;
                }

                _cleanup_free_ char *ja = to_json(a, &na);
                _cleanup_(manifest_freep) Manifest *b = parse_ok(ja, na, 0);
                _cleanup_free_ char *jb = to_json(b, &nb);

                assert_manifest_eq(a, b);
                ASSERT_EQ(na, nb);
                ASSERT_TRUE(memcmp(ja, jb, na) == 0);
        }
}

TEST(serialisation_is_canonical)
{
        /* Same manifest written with other key order, spacing and escapes: same bytes out. */
        static const char shuffled[] = "{\"payloads\":[{\"sha256\":\"" SHA_A
                                       "\",\"size\":5,\"slot_class\":\"rootfs\",\"handler\":\"raw\","
                                       "\"file\":\"img\",\"name\":\"\\u0069mg\"}],\"build\":\"2026-01-01T00:"
                                       "00:00Z\",\"version\":\"1.0.0\","
                                       "\"reboot\":true,\"compatible\":\"gw\",\"format\":1}";
        _cleanup_(manifest_freep) Manifest *a = parse_ok(MINIMAL, strlen(MINIMAL), 0);
        _cleanup_(manifest_freep) Manifest *b = parse_ok(shuffled, strlen(shuffled), 0);
        _cleanup_free_ char *ja = to_json(a, NULL);
        _cleanup_free_ char *jb = to_json(b, NULL);

        ASSERT_STREQ(ja, jb);
        ASSERT_STREQ(ja, "{\n"
                         "  \"format\":1,\n"
                         "  \"compatible\":\"gw\",\n"
                         "  \"version\":\"1.0.0\",\n"
                         "  \"build\":\"2026-01-01T00:00:00Z\",\n"
                         "  \"reboot\":true,\n"
                         "  \"payloads\":[\n"
                         "    {\n"
                         "      \"name\":\"img\",\n"
                         "      \"file\":\"img\",\n"
                         "      \"handler\":\"raw\",\n"
                         "      \"slot_class\":\"rootfs\",\n"
                         "      \"size\":5,\n"
                         "      \"sha256\":\"" SHA_A "\"\n"
                         "    }\n"
                         "  ]\n"
                         "}\n");
}

TEST(serialisation_key_order)
{
        static const char *const order[] = {
                "\"format\"",     "\"compatible\"",  "\"version\"",        "\"min_version\"",
                "\"build\"",      "\"description\"", "\"security\"",       "\"type\"",
                "\"advisories\"", "\"summary\"",     "\"support\"",        "\"end\"",
                "\"url\"",        "\"reboot\"",      "\"payloads\"",       "\"name\"",
                "\"file\"",       "\"handler\"",     "\"slot_class\"",     "\"size\"",
                "\"sha256\"",     "\"compression\"", "\"installed_size\"", "\"name\"",
                "\"file\"",       "\"handler\"",     "\"target\"",         "\"size\"",
                "\"sha256\"",     "\"name\"",
        };
        _cleanup_(manifest_freep) Manifest *m = parse_ok(VALID, strlen(VALID), 0);
        _cleanup_free_ char *json = to_json(m, NULL);
        const char *p = json;

        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                const char *q = strstr(p, order[i]);
                if (!q)
                        test_fail("key %s (#%zu) not found in order in:\n%s", order[i], i, json);
                p = q + 1;
        }
        /* Uncompressed payloads do not repeat installed_size; slashes are not escaped. */
        ASSERT_TRUE(strstr(json, "\"installed_size\":4096"));
        ASSERT_TRUE(strstr(strstr(json, "\"app\""), "\"installed_size\"") == NULL);
        ASSERT_TRUE(strstr(json, "\"https://acme.example/support\""));
        ASSERT_TRUE(strstr(json, "\"reboot\":false"));
}

TEST(serialisation_escapes)
{
        _cleanup_free_ char *doc = subst(VALID, "\"Quarterly update\"",
                                         "\"tab\\t quote\\\" back\\\\ nl\\n \\u00e9 \\u001f /\"");
        _cleanup_(manifest_freep) Manifest *a = parse_ok(doc, strlen(doc), 0);
        _cleanup_free_ char *json = to_json(a, NULL);
        _cleanup_(manifest_freep) Manifest *b = parse_ok(json, strlen(json), 0);

        ASSERT_STREQ(a->description, "tab\t quote\" back\\ nl\n \xc3\xa9 \x1f /");
        ASSERT_STREQ(b->description, a->description);
}

TEST(serialisation_rejects_incomplete)
{
        _cleanup_(manifest_freep) Manifest *m = parse_ok(VALID, strlen(VALID), 0);
        char *json = NULL;
        size_t size;

        m->payloads[1].has_digest = false;
        ASSERT_ERR(manifest_to_json(m, &json, &size), -EINVAL);
        m->payloads[1].has_digest = true;

        m->payloads[0].has_installed_size = false; /* compressed */
        ASSERT_ERR(manifest_to_json(m, &json, &size), -EINVAL);
        m->payloads[0].has_installed_size = true;

        m->payloads[1].installed_size = 1; /* uncompressed, differs from size */
        ASSERT_ERR(manifest_to_json(m, &json, &size), -EINVAL);
        m->payloads[1].installed_size = m->payloads[1].size;

        char *t = m->payloads[0].target;
        m->payloads[0].target = (char *)"/x"; /* both slot_class and target */
        ASSERT_ERR(manifest_to_json(m, &json, &size), -EINVAL);
        m->payloads[0].target = t;

        ASSERT_TRUE(json == NULL);
        ASSERT_OK(manifest_to_json(m, &json, NULL));
        free(json);
}

/* ---- string tables ---- */

TEST(string_tables)
{
        for (Compression c = 0; c < _COMPRESSION_MAX; c++) {
                const char *s = compression_to_string(c);
                ASSERT_TRUE(s);
                ASSERT_EQ(compression_from_string(s), c);
        }
        ASSERT_STREQ(compression_to_string(COMPRESSION_ZSTD), "zstd");
        ASSERT_STREQ(compression_to_string(COMPRESSION_XZ), "xz");
        ASSERT_STREQ(compression_to_string(COMPRESSION_GZIP), "gzip");
        ASSERT_TRUE(compression_to_string(_COMPRESSION_MAX) == NULL);
        ASSERT_TRUE(compression_to_string(_COMPRESSION_INVALID) == NULL);
        ASSERT_EQ(compression_from_string("lz4"), _COMPRESSION_INVALID);
        ASSERT_EQ(compression_from_string(""), _COMPRESSION_INVALID);
        ASSERT_EQ(compression_from_string(NULL), _COMPRESSION_INVALID);

        for (SecurityType t = 0; t < _SECURITY_TYPE_MAX; t++) {
                const char *s = security_type_to_string(t);
                ASSERT_TRUE(s);
                ASSERT_EQ(security_type_from_string(s), t);
        }
        ASSERT_STREQ(security_type_to_string(SECURITY_TYPE_SECURITY), "security");
        ASSERT_STREQ(security_type_to_string(SECURITY_TYPE_FEATURE), "feature");
        ASSERT_STREQ(security_type_to_string(SECURITY_TYPE_MIXED), "mixed");
        ASSERT_TRUE(security_type_to_string(_SECURITY_TYPE_MAX) == NULL);
        ASSERT_TRUE(security_type_to_string(-1) == NULL);
        ASSERT_EQ(security_type_from_string("Security"), _SECURITY_TYPE_INVALID);
        ASSERT_EQ(security_type_from_string(NULL), _SECURITY_TYPE_INVALID);

        ASSERT_TRUE(manifest_free(NULL) == NULL);
}

TEST(no_data_has_a_message)
{
        Manifest *m = NULL;
        UpkErr e = {};

        ASSERT_UPK_ERR(manifest_parse(NULL, 10, 0, &m, &e), &e, -EINVAL, UPK_ERR_MANIFEST,
                       "manifest: 10 bytes announced, none given");
        ASSERT_TRUE(m == NULL);
}
