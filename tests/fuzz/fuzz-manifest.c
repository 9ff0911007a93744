/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parse the input as a manifest and as a template. Whatever parses must serialise (when complete), parse
 * again to an equal manifest, and serialise to the same bytes again. Any difference aborts. */
#include <stdio.h>

#include "fuzz.h"
#include "manifest.h"

static bool str_eq(const char *a, const char *b)
{
        return (!a && !b) || (a && b && streq(a, b));
}

static bool version_eq(const Version *a, const Version *b)
{
        return a->major == b->major && a->minor == b->minor && a->patch == b->patch &&
               streq(a->prerelease, b->prerelease) && streq(a->build, b->build);
}

static bool payload_eq(const ManifestPayload *a, const ManifestPayload *b)
{
        return streq(a->name, b->name) && streq(a->file, b->file) && streq(a->handler, b->handler) &&
               str_eq(a->slot_class, b->slot_class) && str_eq(a->target, b->target) && a->size == b->size &&
               a->has_digest == b->has_digest && memcmp(a->sha256, b->sha256, sizeof(a->sha256)) == 0 &&
               a->compression == b->compression && a->has_installed_size == b->has_installed_size &&
               a->installed_size == b->installed_size && a->has_chunks == b->has_chunks &&
               a->chunk_size == b->chunk_size && a->chunk_count == b->chunk_count &&
               a->chunk_compression == b->chunk_compression;
}

static bool manifest_eq(const Manifest *a, const Manifest *b)
{
        if (a->format != b->format || !str_eq(a->compatible, b->compatible) ||
            !str_eq(a->version_str, b->version_str) || !version_eq(&a->version, &b->version) ||
            !str_eq(a->min_version_str, b->min_version_str) ||
            (a->min_version_str && !version_eq(&a->min_version, &b->min_version)) ||
            !str_eq(a->build, b->build) || !str_eq(a->description, b->description) ||
            a->has_security != b->has_security ||
            (a->has_security && a->security_type != b->security_type) ||
            a->n_advisories != b->n_advisories || !str_eq(a->security_summary, b->security_summary) ||
            !str_eq(a->support_end, b->support_end) || !str_eq(a->support_url, b->support_url) ||
            a->reboot != b->reboot || a->n_payloads != b->n_payloads || a->has_index != b->has_index ||
            a->index_size != b->index_size || memcmp(a->index_sha256, b->index_sha256, 32) != 0)
                return false;
        for (size_t i = 0; i < a->n_advisories; i++)
                if (!streq(a->advisories[i], b->advisories[i]))
                        return false;
        for (size_t i = 0; i < a->n_payloads; i++)
                if (!payload_eq(&a->payloads[i], &b->payloads[i]))
                        return false;
        return true;
}

static void check(const uint8_t *data, size_t size, ManifestParseFlags flags)
{
        _cleanup_(manifest_freep) Manifest *m = NULL, *again = NULL;
        _cleanup_free_ char *json = NULL, *json2 = NULL;
        size_t n = 0, n2 = 0;
        UpkErr err = {};
        int r;

        r = manifest_parse(data, size, flags, &m, &err);
        if (r < 0) {
                /* Schema and syntax errors are -EBADMSG with a message; nothing else but memory. */
                if (r != -ENOMEM &&
                    (r != -EBADMSG || err.kind != UPK_ERR_MANIFEST || !strneq(err.msg, "manifest: ", 10)))
                        abort();
                return;
        }

        r = manifest_to_json(m, &json, &n);
        if (r == -EINVAL) {
                /* Only a template may be incomplete. */
                if (!(flags & MANIFEST_PARSE_TEMPLATE))
                        abort();
                return;
        }
        if (r < 0)
                return; /* -ENOMEM */

        upk_err_clear(&err);
        r = manifest_parse(json, n, 0, &again, &err);
        if (r < 0) {
                fprintf(stderr, "reparse failed: %s\n%s", err.msg, json);
                abort();
        }
        if (!manifest_eq(m, again)) {
                fprintf(stderr, "reparse differs:\n%s", json);
                abort();
        }
        if (manifest_to_json(again, &json2, &n2) < 0 || n != n2 || memcmp(json, json2, n) != 0) {
                fprintf(stderr, "serialisation is not stable:\n%s", json);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        check(data, size, 0);
        check(data, size, MANIFEST_PARSE_TEMPLATE);
        return 0;
}
