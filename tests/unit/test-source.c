/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The update sources without a network: the [source] settings each type needs (refused with the key
 * named), the local folder source choosing among bundles, offers compared, and the URL source refusing
 * what it cannot fetch. The TUF source against a repository is tested in tests/integration/test_poll.py. */
#include <sys/stat.h>
#include <unistd.h>

#include "bundle-test-util.h"
#include "source.h"

/* upkeep.conf with a [source] section, the data dir in the current folder. */
static Config *config_with_source(const char *source)
{
        _cleanup_free_ char *data = test_cwd_path("data"), *text = NULL;
        Config *c = NULL;
        UpkErr e = {};

        text = strdup_printf("[device]\n"
                             "compatible = acme-gw\n"
                             "data-dir = %s\n"
                             "[keyring]\n"
                             "path = %s\n"
                             "[source]\n"
                             "%s",
                             data, test_pki("keyring.pem"), source);
        ASSERT_TRUE(text);
        test_write_str("upkeep.conf", text);
        ASSERT_OK_E(config_load("upkeep.conf", &c, &e), &e);
        return c;
}

static void source_refused(const char *source, int code, const char *msg)
{
        _cleanup_(config_freep) Config *c = config_with_source(source);
        Source *s = NULL;
        UpkErr e = {};

        ASSERT_UPK_ERR(source_new(c, &s, &e), &e, code, UPK_ERR_CONFIG, msg);
        ASSERT_TRUE(s == NULL);
}

static Source *source_ok(const Config *c, SourceType type)
{
        Source *s = NULL;
        UpkErr e = {};

        ASSERT_OK_E(source_new(c, &s, &e), &e);
        ASSERT_TRUE(s);
        ASSERT_EQ(source_get_type(s), type);
        return s;
}

/* ---- settings ---- */

TEST(none_offers_nothing)
{
        _cleanup_(config_freep) Config *c = config_with_source("type = none\n");
        _cleanup_(source_freep) Source *s = source_ok(c, SOURCE_NONE);
        Offer *o = NULL;
        UpkErr e = {};

        ASSERT_UPK_ERR(source_check(s, "1.0.0", false, &o, &e), &e, -EOPNOTSUPP, UPK_ERR_CONFIG,
                       "no update source is configured ([source] type = none)");
        ASSERT_TRUE(o == NULL);
}

TEST(local_needs_a_folder)
{
        source_refused("type = local\n", -EINVAL, "[source] dir: required for type = local");
}

#if HAVE_HAWKBIT
TEST(hawkbit_needs_url_and_token_file)
{
        source_refused("type = hawkbit\ncontroller-id = gw-1\n", -EINVAL,
                       "[source] url: required for type = hawkbit");
        source_refused("type = hawkbit\nurl = https://hawkbit.example.com/\ncontroller-id = gw-1\n", -EINVAL,
                       "[source] token-file: required for auth = target-token");
        source_refused("type = hawkbit\nurl = https://hawkbit.example.com/\ncontroller-id = gw-1\n"
                       "auth = gateway-token\n",
                       -EINVAL, "[source] token-file: required for auth = gateway-token");
}
#else
TEST(hawkbit_is_refused_without_it)
{
        source_refused("type = hawkbit\nurl = https://hawkbit.example.com/\n", -EOPNOTSUPP,
                       "[source] type = hawkbit: this upkeepd was built without hawkBit support");
}
#endif

#if HAVE_TUF
TEST(tuf_needs_urls_and_a_root)
{
        _cleanup_free_ char *root = test_cwd_path("root.json"), *missing = test_cwd_path("missing.json");
        _cleanup_free_ char *with_missing = NULL, *only_metadata = NULL;

        test_write_str("root.json", "{}\n");
        source_refused("type = tuf\n", -EINVAL,
                       "[source] url: required for type = tuf (or both metadata-url and targets-url)");
        only_metadata = strdup_printf(
                "type = tuf\nmetadata-url = https://updates.example.com/m/\nroot = %s\n", root);
        source_refused(only_metadata, -EINVAL, "[source] url: required for type = tuf");
        source_refused("type = tuf\nurl = https://updates.example.com/\n", -EINVAL,
                       "[source] root: required for type = tuf: the trusted root.json of the repository");
        with_missing = strdup_printf("type = tuf\nurl = https://updates.example.com/\nroot = %s\n", missing);
        source_refused(with_missing, -ENOENT, "[source] root: cannot read");
}

TEST(tuf_with_a_root)
{
        _cleanup_free_ char *root = test_cwd_path("root.json"), *text = NULL;
        _cleanup_(config_freep) Config *c = NULL, *later = NULL;
        _cleanup_(source_freep) Source *s = NULL, *again = NULL;

        test_write_str("root.json", "{}\n");
        text = strdup_printf("type = tuf\nurl = https://updates.example.com/\nroot = %s\n", root);
        c = config_with_source(text);
        s = source_ok(c, SOURCE_TUF);
        /* no [source] root, but the trusted root.json of an earlier run under the data dir */
        ASSERT_OK(mkdir("data", 0755));
        ASSERT_OK(mkdir("data/tuf", 0755));
        test_write_str("data/tuf/root.json", "{}\n");
        later = config_with_source("type = tuf\nurl = https://updates.example.com/\n");
        again = source_ok(later, SOURCE_TUF);
}
#else
TEST(tuf_needs_a_tuf_build)
{
        source_refused("type = tuf\nurl = https://updates.example.com/\n", -EOPNOTSUPP,
                       "this upkeepd was built without TUF support (-Dtuf=false)");
}
#endif

/* ---- the local folder ---- */

/* A signed bundle `name` in usb/ for `compatible` and `version`, signed by `signer` (signer.pem when
 * NULL); `security` is the manifest's security type or NULL. */
static void local_bundle(const char *name, const char *compatible, const char *version, const char *signer,
                         const char *security)
{
        _cleanup_free_ char *manifest = NULL, *out = strdup_printf("usb/%s", name);
        _cleanup_free_ char *cert = strdup_printf("%s.pem", signer ?: "signer");
        _cleanup_free_ char *key = strdup_printf("%s.key", signer ?: "signer");
        _cleanup_free_ char *sec = security ? strdup_printf(", \"security\": { \"type\": \"%s\", "
                                                            "\"advisories\": [\"CVE-2026-0001\"] }",
                                                            security)
                                            : strdup("");
        _cleanup_free_ uint8_t *payload = random_bytes(4096, (unsigned)strlen(version));
        UpkErr e = {};

        ASSERT_TRUE(out && cert && key && sec);
        manifest = strdup_printf("{ \"format\": 1, \"compatible\": \"%s\", \"version\": \"%s\",\n"
                                 "  \"build\": \"2026-11-25T10:00:00Z\"%s,\n"
                                 "  \"payloads\": [ { \"name\": \"rootfs\", \"file\": \"rootfs.img\", "
                                 "\"handler\": \"raw\", \"slot_class\": \"rootfs\" } ] }\n",
                                 compatible, version, sec);
        ASSERT_TRUE(manifest);
        test_write_file("rootfs.img", payload, 4096);
        test_write_str("manifest.json", manifest);
        BundleCreateOptions o = {
                .manifest_path = "manifest.json",
                .cert_path = test_pki(cert),
                .key_path = test_pki(key),
                .chain_path = test_pki("chain.pem"),
                .output_path = out,
        };
        ASSERT_OK_E(bundle_create(&o, &e), &e);
}

/* usb/ with the one bundle to offer (1.2.0, a security update) among those not to offer. */
static void usb_folder(void)
{
        ASSERT_OK(mkdir("usb", 0755));
        local_bundle("b-1.1.0.upk", "acme-gw", "1.1.0", NULL, NULL);
        local_bundle("b-1.2.0.upk", "acme-gw", "1.2.0", NULL, "security");
        local_bundle("b-0.9.0.upk", "acme-gw", "0.9.0", NULL, NULL);
        local_bundle("other-9.0.0.upk", "other-gw", "9.0.0", NULL, NULL);             /* another device's */
        local_bundle("stranger-3.0.0.upk", "acme-gw", "3.0.0", "other-signer", NULL); /* not our keyring */
        local_bundle(".hidden-5.0.0.upk", "acme-gw", "5.0.0", NULL, NULL); /* hidden files are skipped */
        local_bundle("b-4.0.0.bin", "acme-gw", "4.0.0", NULL, NULL);       /* not *.upk */
        test_write_str("usb/junk.upk", "not a bundle\n");
        test_write_str("usb/notes.txt", "ignored\n");
}

static Offer *local_check(const Config *c, const char *current)
{
        _cleanup_(source_freep) Source *s = source_ok(c, SOURCE_LOCAL);
        Offer *o = NULL;
        UpkErr e = {};

        ASSERT_OK_E(source_check(s, current, true, &o, &e), &e);
        return o;
}

TEST(local_offers_the_newest_signed_compatible_bundle)
{
        _cleanup_free_ char *dir = test_cwd_path("usb"),
                            *conf = strdup_printf("type = local\ndir = %s\n", dir);
        _cleanup_free_ char *path = test_cwd_path("usb/b-1.2.0.upk");
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(offer_freep) Offer *o = NULL, *any = NULL, *none = NULL;
        struct stat st;

        usb_folder();
        c = config_with_source(conf);
        o = local_check(c, "1.0.0");
        ASSERT_TRUE(o);
        ASSERT_STREQ(o->version, "1.2.0");
        ASSERT_STREQ(o->name, "b-1.2.0.upk");
        ASSERT_STREQ(o->location, path);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(o->length, st.st_size);
        ASSERT_TRUE(o->target == NULL);
        ASSERT_TRUE(o->has_manifest);
        ASSERT_TRUE(o->has_security);
        ASSERT_EQ(o->security, SECURITY_TYPE_SECURITY);

        /* without a running version: the newest */
        any = local_check(c, NULL);
        ASSERT_TRUE(any);
        ASSERT_STREQ(any->version, "1.2.0");
        ASSERT_TRUE(offer_same(o, any));

        /* nothing newer than what runs */
        none = local_check(c, "1.2.0");
        ASSERT_TRUE(none == NULL);
}

TEST(local_folder_missing)
{
        _cleanup_free_ char *dir = test_cwd_path("usb"),
                            *conf = strdup_printf("type = local\ndir = %s\n", dir);
        _cleanup_(config_freep) Config *c = config_with_source(conf);
        _cleanup_(source_freep) Source *s = source_ok(c, SOURCE_LOCAL);
        Offer *o = NULL;
        UpkErr e = {};

        ASSERT_UPK_ERR(source_check(s, "1.0.0", false, &o, &e), &e, -ENOENT, UPK_ERR_IO,
                       "[source] dir: cannot read");
        ASSERT_TRUE(o == NULL);
}

/* ---- offers ---- */

TEST(offers_compared)
{
        char v1[] = "1.1.0", v2[] = "1.2.0", n1[] = "b.upk", n2[] = "c.upk", l1[] = "/usb/b.upk",
             l2[] = "https://updates.example.com/targets/b.upk";
        Offer a = { .version = v1, .name = n1, .location = l1, .length = 100 };
        Offer same = a, longer = a, elsewhere = a, renamed = a, newer = a;

        longer.length = 101;
        elsewhere.location = l2;
        renamed.name = n2;
        newer.version = v2;
        ASSERT_TRUE(offer_same(&a, &same));
        ASSERT_TRUE(offer_same(NULL, NULL));
        ASSERT_FALSE(offer_same(&a, NULL));
        ASSERT_FALSE(offer_same(NULL, &a));
        ASSERT_FALSE(offer_same(&a, &longer));
        ASSERT_FALSE(offer_same(&a, &elsewhere));
        ASSERT_FALSE(offer_same(&a, &renamed));
        ASSERT_FALSE(offer_same(&a, &newer));
}

/* ---- streams ---- */

TEST(url_stream_only_http)
{
        _cleanup_(config_freep) Config *c = config_with_source("type = none\n");
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *engine = NULL;
        static const char *const urls[] = { "file:///etc/passwd", "ftp://127.0.0.1/b.upk", "/usb/b.upk" };
        UpkErr e = {};

        ASSERT_OK(sd_event_new(&event));
        ASSERT_OK_E(fetch_engine_new(event, &engine, &e), &e);
        for (size_t i = 0; i < ELEMENTSOF(urls); i++) {
                SourceStream *s = NULL;

                ASSERT_UPK_ERR(source_stream_open_url(engine, c, urls[i], &s, &e), &e, -EPROTONOSUPPORT,
                               UPK_ERR_CONFIG, "only http:// and https:// URLs can be fetched");
                ASSERT_TRUE(s == NULL);
        }
}

TEST(local_offer_is_not_a_download)
{
        _cleanup_(config_freep) Config *c = config_with_source("type = none\n");
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *engine = NULL;
        char v[] = "1.1.0", n[] = "b.upk", l[] = "/usb/b.upk";
        Offer o = { .version = v, .name = n, .location = l, .length = 100 };
        SourceStream *s = NULL;
        UpkErr e = {};

        ASSERT_OK(sd_event_new(&event));
        ASSERT_OK_E(fetch_engine_new(event, &engine, &e), &e);
        ASSERT_UPK_ERR(source_stream_open_offer(engine, c, &o, &s, &e), &e, -EINVAL, UPK_ERR_IO,
                       "b.upk: not a download");
        ASSERT_TRUE(s == NULL);
}
