/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* updatectl bundle create|info|verify|extract: the offline bundle commands. */
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>

#include "bundle.h"
#include "chunk-index.h"
#include "cli.h"

#define ZSTD_LEVEL_MAX 19 /* zstd's levels above need --ultra memory on the reading side as well */
#include "hexdecoct.h"

enum {
        ARG_MANIFEST = 0x100,
        ARG_CERT,
        ARG_KEY,
        ARG_CHAIN,
        ARG_PAYLOAD_DIR,
        ARG_KEYRING,
        ARG_CRL,
        ARG_JSON,
        ARG_ALLOW_ANY_EKU,
        ARG_CONTENT,
        ARG_FORMAT,
        ARG_CHUNK_SIZE,
        ARG_BLOCK_SIZE,
        ARG_COMPRESSION,
        ARG_ZSTD_LEVEL,
        ARG_WINDOW,
        ARG_JOBS,
};

typedef struct BundleArgs {
        const char *manifest, *cert, *key, *chain, *payload_dir, *output;
        const char *keyring, *crl;
        const char *format, *chunk_size, *block_size, *compression, *zstd_level, *window, *jobs;
        bool json, allow_any_eku, content;
        char **pos;
        int n_pos;
} BundleArgs;

/* Parse the options a verb allows (`allowed` lists their ids); positional arguments go to args->pos. */
static int parse_args(const char *verb, int argc, char *argv[], const int *allowed, BundleArgs *args)
{
        static const struct option options[] = {
                { "manifest", required_argument, NULL, ARG_MANIFEST },
                { "cert", required_argument, NULL, ARG_CERT },
                { "key", required_argument, NULL, ARG_KEY },
                { "chain", required_argument, NULL, ARG_CHAIN },
                { "payload-dir", required_argument, NULL, ARG_PAYLOAD_DIR },
                { "output", required_argument, NULL, 'o' },
                { "keyring", required_argument, NULL, ARG_KEYRING },
                { "crl", required_argument, NULL, ARG_CRL },
                { "json", no_argument, NULL, ARG_JSON },
                { "allow-any-eku", no_argument, NULL, ARG_ALLOW_ANY_EKU },
                { "content", no_argument, NULL, ARG_CONTENT },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "chunk-size", required_argument, NULL, ARG_CHUNK_SIZE },
                { "block-size", required_argument, NULL, ARG_BLOCK_SIZE },
                { "window", required_argument, NULL, ARG_WINDOW },
                { "compression", required_argument, NULL, ARG_COMPRESSION },
                { "zstd-level", required_argument, NULL, ARG_ZSTD_LEVEL },
                { "jobs", required_argument, NULL, ARG_JOBS },
                {},
        };
        int c;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+o:", options, NULL)) >= 0) {
                bool ok = false;
                if (c == '?' || c == ':')
                        return cli_usage_error("bundle %s: unknown option or missing value: %s", verb,
                                               argv[optind - 1]);
                for (const int *a = allowed; *a; a++)
                        ok = ok || *a == c;
                if (!ok)
                        return cli_usage_error("bundle %s: option %s does not apply here", verb,
                                               argv[optind - 1]);
                switch (c) {
                case ARG_MANIFEST:
                        args->manifest = optarg;
                        break;
                case ARG_CERT:
                        args->cert = optarg;
                        break;
                case ARG_KEY:
                        args->key = optarg;
                        break;
                case ARG_CHAIN:
                        args->chain = optarg;
                        break;
                case ARG_PAYLOAD_DIR:
                        args->payload_dir = optarg;
                        break;
                case 'o':
                        args->output = optarg;
                        break;
                case ARG_KEYRING:
                        args->keyring = optarg;
                        break;
                case ARG_CRL:
                        args->crl = optarg;
                        break;
                case ARG_JSON:
                        args->json = true;
                        break;
                case ARG_ALLOW_ANY_EKU:
                        args->allow_any_eku = true;
                        break;
                case ARG_CONTENT:
                        args->content = true;
                        break;
                case ARG_FORMAT:
                        args->format = optarg;
                        break;
                case ARG_CHUNK_SIZE:
                        args->chunk_size = optarg;
                        break;
                case ARG_BLOCK_SIZE:
                        args->block_size = optarg;
                        break;
                case ARG_WINDOW:
                        args->window = optarg;
                        break;
                case ARG_COMPRESSION:
                        args->compression = optarg;
                        break;
                case ARG_ZSTD_LEVEL:
                        args->zstd_level = optarg;
                        break;
                case ARG_JOBS:
                        args->jobs = optarg;
                        break;
                default:
                        return cli_usage_error("bundle %s: unexpected option", verb);
                }
        }
        args->pos = argv + optind;
        args->n_pos = argc - optind;
        return 0;
}

/* A decimal number from min to max. */
static bool parse_number(const char *s, long min, long max, long *ret)
{
        char *end = NULL;
        long v;

        if (!s || !*s || *s == '+' || *s == '-' || *s == ' ')
                return false;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || *end || v < min || v > max)
                return false;
        *ret = v;
        return true;
}

static int verb_create(int argc, char *argv[])
{
        static const int allowed[] = { ARG_MANIFEST,
                                       ARG_CERT,
                                       ARG_KEY,
                                       ARG_CHAIN,
                                       ARG_PAYLOAD_DIR,
                                       ARG_ALLOW_ANY_EKU,
                                       'o',
                                       ARG_FORMAT,
                                       ARG_CHUNK_SIZE,
                                       ARG_COMPRESSION,
                                       ARG_ZSTD_LEVEL,
                                       ARG_BLOCK_SIZE,
                                       ARG_WINDOW,
                                       ARG_JOBS,
                                       0 };
        BundleArgs a = {};
        UpkErr err = {};
        long format = BUNDLE_FORMAT_DEFAULT, chunk_size = 0, block_size = 0, level = 0, window = 0, jobs = 0;
        int r;

        r = parse_args("create", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos > 0)
                return cli_usage_error("bundle create: unexpected argument \"%s\"", a.pos[0]);
        if (!a.manifest || !a.cert || !a.key || !a.output)
                return cli_usage_error("bundle create needs --manifest, --cert, --key and -o");
        if (a.format && !parse_number(a.format, 1, 2, &format))
                return cli_usage_error("bundle create: --format \"%s\": expected 1 or 2", a.format);
        if (format == 1 &&
            (a.chunk_size || a.block_size || a.compression || a.zstd_level || a.window || a.jobs))
                return cli_usage_error("bundle create: --chunk-size, --block-size, --compression, "
                                       "--zstd-level, --window and --jobs apply to format 2 only");
        if (a.block_size &&
            (!parse_number(a.block_size, MANIFEST_BLOCK_SIZE_MIN, MANIFEST_BLOCK_SIZE_MAX, &block_size) ||
             (block_size & (block_size - 1)) != 0))
                return cli_usage_error(
                        "bundle create: --block-size \"%s\": expected a power of two from %u to %u",
                        a.block_size, MANIFEST_BLOCK_SIZE_MIN, MANIFEST_BLOCK_SIZE_MAX);
        if (a.window &&
            (!parse_number(a.window, 0, MANIFEST_WINDOW_MAX, &window) ||
             (window != 0 && (window < (long)MANIFEST_WINDOW_MIN || (window & (window - 1)) != 0))))
                return cli_usage_error(
                        "bundle create: --window \"%s\": expected 0 or a power of two from %u to %u",
                        a.window, MANIFEST_WINDOW_MIN, MANIFEST_WINDOW_MAX);
        if (a.chunk_size &&
            (!parse_number(a.chunk_size, MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MAX, &chunk_size) ||
             (chunk_size & (chunk_size - 1)) != 0))
                return cli_usage_error(
                        "bundle create: --chunk-size \"%s\": expected a power of two from %u to %u",
                        a.chunk_size, MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MAX);
        if (a.compression && !streq(a.compression, "none") && !streq(a.compression, "zstd"))
                return cli_usage_error("bundle create: --compression \"%s\": expected none or zstd",
                                       a.compression);
        if (a.zstd_level && !parse_number(a.zstd_level, 1, ZSTD_LEVEL_MAX, &level))
                return cli_usage_error("bundle create: --zstd-level \"%s\": expected 1 to %d", a.zstd_level,
                                       ZSTD_LEVEL_MAX);
        if (a.jobs && !parse_number(a.jobs, 1, BUNDLE_JOBS_MAX, &jobs))
                return cli_usage_error(
                        "bundle create: --jobs \"%s\": expected a number of threads from 1 to %d", a.jobs,
                        BUNDLE_JOBS_MAX);

        /* Devices would refuse this signer: say so before the work, but sign anyway (the devices
         * decide, and a PKI under test may want exactly such a bundle). */
        if (signature_check_signer(a.cert, a.allow_any_eku ? SIGNATURE_ALLOW_ANY_EKU : 0, &err) == -EBADMSG)
                fprintf(stderr, "%s: warning: %s: devices will refuse bundles signed with it: %s\n",
                        program_name, a.cert, err.msg);
        upk_err_clear(&err);

        BundleCreateOptions opts = {
                .manifest_path = a.manifest,
                .cert_path = a.cert,
                .key_path = a.key,
                .chain_path = a.chain,
                .payload_dir = a.payload_dir,
                .output_path = a.output,
                .format = (int)format,
                .chunk_size = (uint32_t)chunk_size,
                .block_size = (uint32_t)block_size,
                .window_set = a.window != NULL,
                .window = (uint32_t)window,
                .compression_set = a.compression != NULL,
                .compression = a.compression ? compression_from_string(a.compression) : COMPRESSION_NONE,
                .zstd_level = (int)level,
                .jobs = (unsigned)jobs, /* 0: the online CPUs */
        };
        r = bundle_create(&opts, &err);
        if (r < 0)
                return cli_report(a.output, &err);
        printf("%s: created\n", a.output);
        return EXIT_OK;
}

static void print_size(const char *label, uint64_t v)
{
        printf("  %-15s %" PRIu64 " bytes\n", label, v);
}

/* A format-2 payload's blocks by how they are stored: as is, zstd frames, zeros. */
typedef struct BlockCounts {
        uint64_t n[_BLOCK_KIND_MAX];
        uint64_t stored[_BLOCK_KIND_MAX];
} BlockCounts;

static BlockCounts block_counts(const Bundle *b, size_t payload)
{
        const ChunkIndex *idx = bundle_get_index(b);
        BlockCounts c = {};

        if (!idx || idx->first[payload] == idx->first[payload + 1])
                return c;
        for (size_t i = idx->first[payload]; i < idx->first[payload + 1]; i++)
                for (uint32_t k = 0; k < idx->entries[i].n_blocks; k++) {
                        const BlockEntry *e = &idx->blocks[idx->entries[i].first_block + k];
                        c.n[e->kind]++;
                        c.stored[e->kind] += e->stored_len;
                }
        return c;
}

static void info_human(const char *path, const Bundle *b)
{
        const Manifest *m = bundle_get_manifest(b);
        const SignatureSigner *s = bundle_get_signer(b);

        printf("Bundle:      %s\n", path);
        if (s)
                printf("Signature:   verified; signed by %s\n             issued by %s, serial %s, digest "
                       "%s\n",
                       s->subject, s->issuer, s->serial, s->digest);
        else
                printf("Signature:   NOT VERIFIED (no keyring given)\n");
        printf("Format:      %d\n", m->format);
        printf("Compatible:  %s\n", m->compatible);
        printf("Version:     %s\n", m->version_str);
        if (m->min_version_str)
                printf("Min version: %s\n", m->min_version_str);
        printf("Build:       %s\n", m->build);
        if (m->description)
                printf("Description: %s\n", m->description);
        if (m->has_security) {
                printf("Security:    %s", security_type_to_string(m->security_type));
                for (size_t i = 0; i < m->n_advisories; i++)
                        printf("%s%s", i == 0 ? " (" : ", ", m->advisories[i]);
                printf("%s\n", m->n_advisories > 0 ? ")" : "");
                if (m->security_summary)
                        printf("             %s\n", m->security_summary);
        }
        if (m->support_end)
                printf("Support end: %s%s%s\n", m->support_end, m->support_url ? " " : "",
                       m->support_url ?: "");
        printf("Reboot:      %s\n", m->reboot ? "yes" : "no");
        printf("Payloads:    %zu\n", m->n_payloads);
        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                char hex[65];
                hex_encode(p->sha256, 32, hex);
                printf("- %s\n", p->name);
                printf("  %-15s %s\n", "file", p->file);
                printf("  %-15s %s\n", "handler", p->handler);
                if (p->slot_class)
                        printf("  %-15s %s\n", "slot class", p->slot_class);
                else
                        printf("  %-15s %s\n", "target", p->target);
                print_size("size", p->size);
                if (m->format == 2) {
                        print_size("installed size", p->installed_size);
                        printf("  %-15s %s\n", "identity", hex);
                        printf("  %-15s %" PRIu64 " of %" PRIu32 " bytes, blocks of %" PRIu32 " bytes, %s",
                               "chunks", p->chunk_count, p->chunk_size, p->block_size,
                               compression_to_string(p->chunk_compression));
                        if (p->window)
                                printf(" with a window of %" PRIu32 " bytes", p->window);
                        putchar('\n');
                        {
                                BlockCounts c = block_counts(b, i);
                                printf("  %-15s %" PRIu64 " as is (%" PRIu64 " bytes), %" PRIu64
                                       " zstd (%" PRIu64 " bytes), %" PRIu64 " zeros\n",
                                       "blocks", c.n[BLOCK_KIND_STORED], c.stored[BLOCK_KIND_STORED],
                                       c.n[BLOCK_KIND_ZSTD], c.stored[BLOCK_KIND_ZSTD],
                                       c.n[BLOCK_KIND_ZERO]);
                        }
                        continue;
                }
                printf("  %-15s %s\n", "sha256", hex);
                if (p->compression != COMPRESSION_NONE) {
                        printf("  %-15s %s\n", "compression", compression_to_string(p->compression));
                        print_size("installed size", p->installed_size);
                }
        }
}

static int info_json(const char *path, const Bundle *b)
{
        const Manifest *m = bundle_get_manifest(b);
        const SignatureSigner *s = bundle_get_signer(b);
        json_object *o = json_object_new_object(), *manifest;
        const void *raw;
        size_t raw_size;
        int r = 0;

        bundle_get_raw(b, &raw, &raw_size, NULL, NULL);
        manifest = json_tokener_parse((const char *)raw);
        if (!o || !manifest) {
                json_object_put(o);
                json_object_put(manifest);
                fprintf(stderr, "%s: out of memory\n", program_name);
                return EXIT_FAIL;
        }
        json_object_object_add(o, "bundle", json_object_new_string(path));
        json_object_object_add(o, "verified", json_object_new_boolean(s != NULL));
        if (s) {
                json_object *so = json_object_new_object();
                json_object_object_add(so, "subject", json_object_new_string(s->subject));
                json_object_object_add(so, "issuer", json_object_new_string(s->issuer));
                json_object_object_add(so, "serial", json_object_new_string(s->serial));
                json_object_object_add(so, "digest", json_object_new_string(s->digest));
                json_object_object_add(o, "signer", so);
        } else
                json_object_object_add(o, "signer", NULL);
        json_object_object_add(o, "manifest", manifest);
        json_object_object_add(o, "format", json_object_new_int(m->format));
        if (m->format == 2) {
                json_object *arr = json_object_new_array();
                json_object_object_add(o, "payloads", arr);
                for (size_t i = 0; i < m->n_payloads; i++) {
                        const ManifestPayload *p = &m->payloads[i];
                        json_object *po = json_object_new_object();
                        char hex[65];

                        hex_encode(p->sha256, 32, hex);
                        json_object_object_add(po, "name", json_object_new_string(p->name));
                        json_object_object_add(po, "size", json_object_new_uint64(p->size));
                        json_object_object_add(po, "installed_size",
                                               json_object_new_uint64(p->installed_size));
                        json_object_object_add(po, "chunk_size", json_object_new_uint64(p->chunk_size));
                        json_object_object_add(po, "chunk_count", json_object_new_uint64(p->chunk_count));
                        json_object_object_add(po, "block_size", json_object_new_uint64(p->block_size));
                        json_object_object_add(po, "window", json_object_new_uint64(p->window));
                        json_object_object_add(
                                po, "compression",
                                json_object_new_string(compression_to_string(p->chunk_compression)));
                        json_object_object_add(po, "identity", json_object_new_string(hex));
                        {
                                BlockCounts c = block_counts(b, i);
                                json_object *bo = json_object_new_object();
                                static const char *const names[_BLOCK_KIND_MAX] = { "stored", "zstd",
                                                                                    "zeros" };

                                for (int k = 0; k < _BLOCK_KIND_MAX; k++) {
                                        json_object *ko = json_object_new_object();
                                        json_object_object_add(ko, "count", json_object_new_uint64(c.n[k]));
                                        json_object_object_add(ko, "bytes",
                                                               json_object_new_uint64(c.stored[k]));
                                        json_object_object_add(bo, names[k], ko);
                                }
                                json_object_object_add(po, "blocks", bo);
                        }
                        json_object_array_add(arr, po);
                }
        }
        if (puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
                r = EXIT_FAIL;
        json_object_put(o);
        return r;
}

static int verb_info(int argc, char *argv[])
{
        static const int allowed[] = { ARG_KEYRING, ARG_CRL, ARG_JSON, ARG_ALLOW_ANY_EKU, 0 };
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleArgs a = {};
        UpkErr err = {};
        int r;

        r = parse_args("info", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos != 1)
                return cli_usage_error("bundle info takes one bundle");
        if (a.crl && !a.keyring)
                return cli_usage_error("bundle info: --crl needs --keyring");
        if (!a.keyring)
                fprintf(stderr,
                        "WARNING: no keyring given: the signature was NOT verified; nothing below is "
                        "authenticated.\n");

        BundleOpenOptions opts = { .keyring = a.keyring, .crl = a.crl, .allow_any_eku = a.allow_any_eku };
        r = bundle_open_path(a.pos[0], &opts, &b, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        if (a.json)
                return info_json(a.pos[0], b);
        info_human(a.pos[0], b);
        return EXIT_OK;
}

static int open_verified(const char *verb, int argc, char *argv[], int n_pos, BundleArgs *a, Bundle **ret,
                         UpkErr *err)
{
        static const int allowed[] = { ARG_KEYRING, ARG_CRL, ARG_ALLOW_ANY_EKU, 0 };
        static const int allowed_verify[] = { ARG_KEYRING, ARG_CRL, ARG_ALLOW_ANY_EKU, ARG_CONTENT, 0 };
        int r;

        r = parse_args(verb, argc, argv, streq(verb, "verify") ? allowed_verify : allowed, a);
        if (r != 0)
                return r;
        if (a->n_pos != n_pos)
                return cli_usage_error("bundle %s takes %s", verb,
                                       n_pos == 1 ? "one bundle" : "a bundle and a folder");
        if (!a->keyring)
                return cli_usage_error("bundle %s needs --keyring (the trusted CA certificates)", verb);

        BundleOpenOptions opts = { .keyring = a->keyring,
                                   .crl = a->crl,
                                   .allow_any_eku = a->allow_any_eku,
                                   .keep_raw_index = streq(verb, "extract") };
        r = bundle_open_path(a->pos[0], &opts, ret, err);
        if (r < 0)
                return cli_report(a->pos[0], err);
        return 0;
}

static uint64_t payload_bytes(const Manifest *m)
{
        uint64_t total = 0;
        for (size_t i = 0; i < m->n_payloads; i++)
                total += m->payloads[i].size;
        return total;
}

static int verb_verify(int argc, char *argv[])
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleArgs a = {};
        UpkErr err = {};
        int r;

        r = open_verified("verify", argc, argv, 1, &a, &b, &err);
        if (r != 0)
                return r;
        /* What an install checks; --content also the content hashes of chunks whose stored bytes
         * checked out (the signer's consistency; upkeep-bundle(5), Verification). */
        bundle_set_content_check(b, a.content);
        r = bundle_verify_rest(b, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        printf("%s: OK: signed by %s; %zu payload(s), %" PRIu64 " bytes checked\n", a.pos[0],
               bundle_get_signer(b)->subject, bundle_get_manifest(b)->n_payloads,
               payload_bytes(bundle_get_manifest(b)));
        return EXIT_OK;
}

static int verb_extract(int argc, char *argv[])
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleArgs a = {};
        UpkErr err = {};
        int r;

        r = open_verified("extract", argc, argv, 2, &a, &b, &err);
        if (r != 0)
                return r;
        r = bundle_extract(b, a.pos[1], &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        printf("%s: OK: signed by %s; %zu payload(s) extracted to %s\n", a.pos[0],
               bundle_get_signer(b)->subject, bundle_get_manifest(b)->n_payloads, a.pos[1]);
        return EXIT_OK;
}

int bundle_main(int argc, char *argv[])
{
        static const struct {
                const char *name;
                int (*func)(int argc, char *argv[]);
        } verbs[] = {
                { "create", verb_create },
                { "info", verb_info },
                { "verify", verb_verify },
                { "extract", verb_extract },
        };

        if (argc < 2)
                return cli_usage_error("bundle: no subcommand given (create, info, verify, extract)");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[1], verbs[i].name))
                        return verbs[i].func(argc - 1, argv + 1);
        return cli_usage_error("bundle: unknown subcommand \"%s\" (create, info, verify, extract)", argv[1]);
}
