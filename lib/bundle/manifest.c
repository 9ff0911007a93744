/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "manifest.h"

#include "hexdecoct.h"
#include "json-util.h"
#include "time-util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#define BUILD_TIME_MAX 64                      /* "2026-11-25T10:00:00.123456789+01:00" is 35 */
#define HANDLER_MAX    (5 + MANIFEST_NAME_MAX) /* "exec:" + NAME */
#define SHA256_HEX_LEN 64
/* top level, security, support, index and the payloads with their chunks */
#define OBJECTS_MAX (4 + 2 * MANIFEST_PAYLOADS_MAX)

static const char *const compression_table[_COMPRESSION_MAX] = {
        [COMPRESSION_NONE] = "none",
        [COMPRESSION_GZIP] = "gzip",
        [COMPRESSION_XZ] = "xz",
        [COMPRESSION_ZSTD] = "zstd",
};

DEFINE_STRING_TABLE(compression, Compression, compression_table)

static const char *const security_type_table[_SECURITY_TYPE_MAX] = {
        [SECURITY_TYPE_SECURITY] = "security",
        [SECURITY_TYPE_FEATURE] = "feature",
        [SECURITY_TYPE_MIXED] = "mixed",
};

DEFINE_STRING_TABLE(security_type, SecurityType, security_type_table)

Manifest *manifest_free(Manifest *m)
{
        if (!m)
                return NULL;
        free(m->compatible);
        free(m->version_str);
        free(m->min_version_str);
        free(m->build);
        free(m->description);
        for (size_t i = 0; i < m->n_advisories; i++)
                free(m->advisories[i]);
        free(m->advisories);
        free(m->security_summary);
        free(m->support_end);
        free(m->support_url);
        for (size_t i = 0; i < m->n_payloads; i++) {
                ManifestPayload *p = &m->payloads[i];
                free(p->name);
                free(p->file);
                free(p->handler);
                free(p->slot_class);
                free(p->target);
        }
        free(m->payloads);
        free(m);
        return NULL;
}

/* ---- messages ---- */

/* The typed access of json-util.h, with the manifest's messages and error kind. */
#define JCTX(err) (&(const JsonCtx){ .what = "manifest", .kind = UPK_ERR_MANIFEST, .err = (err) })

static int bad(UpkErr *err, const char *fmt, ...) _printf_(2, 3);
static int bad(UpkErr *err, const char *fmt, ...)
{
        char msg[UPK_ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return upk_err(err, UPK_ERR_MANIFEST, -EBADMSG, "manifest: %s", msg);
}

/* ---- character classes and formats ---- */

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* 1..max characters of a-z 0-9 (and A-Z when `upper`) and the punctuation in `punct`. */
static bool charset_ok(const char *s, size_t max, bool upper, const char *punct)
{
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (; *s; s++) {
                char c = *s;
                if ((c >= 'a' && c <= 'z') || is_digit(c) || (upper && c >= 'A' && c <= 'Z') ||
                    strchr(punct, c))
                        continue;
                return false;
        }
        return true;
}

/* A calendar date YYYY-MM-DD, 1970 or later. */
static bool date_valid(const char *s)
{
        int64_t days;

        return date_parse_days(s, &days) >= 0;
}

/* An RFC 3339 date-time (time-util.h), 1970 or later. */
static bool rfc3339_valid(const char *s)
{
        int64_t sec;

        return strnlen(s, BUILD_TIME_MAX + 1) <= BUILD_TIME_MAX && timestamp_parse(s, 0, &sec) >= 0;
}

static bool handler_valid(const char *s)
{
        if (streq(s, "raw") || streq(s, "archive") || streq(s, "file"))
                return true;
        if (strneq(s, "exec:", 5))
                return charset_ok(s + 5, MANIFEST_NAME_MAX, true, "._-") && s[5] != '.'; /* no hidden file */
        return charset_ok(s, MANIFEST_NAME_MAX, false, "_-");                            /* a plugin */
}

/* Absolute, no ".." component, no control characters. */
static bool target_valid(const char *s)
{
        if (s[0] != '/')
                return false;
        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char)*p;
                if (c < 0x20 || c == 0x7f)
                        return false;
                if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == 0))
                        return false;
        }
        return true;
}

static bool advisory_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > MANIFEST_ADVISORY_MAX)
                return false;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p <= 0x20 || *p >= 0x7f)
                        return false;
        return true;
}

/* ---- schema ---- */

static const char *const top_keys[] = {
        "format",   "compatible", "version", "min_version", "build",    "description",
        "security", "support",    "reboot",  "index",       "payloads", NULL,
};
static const char *const security_keys[] = { "type", "advisories", "summary", NULL };
static const char *const support_keys[] = { "end", "url", NULL };
static const char *const payload_keys[] = {
        "name",   "file",        "handler",        "slot_class", "target", "size",
        "sha256", "compression", "installed_size", "chunks",     NULL,
};
static const char *const index_keys[] = { "size", "sha256", NULL };
static const char *const chunks_keys[] = { "size", "block", "count", "compression", "window", NULL };

/* The length of piece i when `total` bytes are cut into pieces of `size` (the last may be shorter). */
static uint32_t piece_length(uint64_t total, uint32_t size, uint64_t i)
{
        uint64_t start = i * size;

        if (start >= total)
                return 0;
        return (uint32_t)(total - start < size ? total - start : size);
}

uint32_t manifest_chunk_length(const ManifestPayload *p, uint64_t i)
{
        return piece_length(p->installed_size, p->chunk_size, i);
}

uint64_t manifest_block_count(const ManifestPayload *p)
{
        if (p->block_size == 0)
                return 0;
        return p->installed_size / p->block_size + (p->installed_size % p->block_size != 0);
}

uint32_t manifest_block_length(const ManifestPayload *p, uint64_t j)
{
        return piece_length(p->installed_size, p->block_size, j);
}

static bool power_of_two_in(uint64_t v, uint64_t lo, uint64_t hi)
{
        return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

static int parse_sha256(json_object *o, const char *path, const char *key, bool required, uint8_t ret[32],
                        UpkErr *err)
{
        const char *s;
        int r;

        r = json_get_string(JCTX(err), o, path, key, required, MANIFEST_STRING_MAX, &s);
        if (r <= 0)
                return r;
        if (strlen(s) != SHA256_HEX_LEN || hex_decode(s, ret, 32) < 0)
                return bad(err, "%s%s%s: expected %u lower-case hex digits", path, *path ? "." : "", key,
                           SHA256_HEX_LEN);
        return 1;
}

/* Format 2: `chunks` of a payload; in a template every part is optional. */
static int parse_chunks(json_object *o, const char *path, bool template, ManifestPayload *p, UpkErr *err)
{
        char cpath[JSON_KEY_PATH_MAX];
        json_object *c;
        uint64_t size = 0;
        const char *s;
        int r;

        r = json_get(JCTX(err), o, path, "chunks", json_type_object, !template, &c);
        if (r <= 0)
                return r;
        p->chunk_compression = _COMPRESSION_INVALID;
        snprintf(cpath, sizeof(cpath), "%s.chunks", path);
        r = json_check_keys(JCTX(err), c, cpath, chunks_keys);
        if (r < 0)
                return r;
        r = json_get_uint(JCTX(err), c, cpath, "size", !template, MANIFEST_CHUNK_SIZE_MAX, &size);
        if (r < 0)
                return r;
        if (r > 0) {
                if (size < MANIFEST_CHUNK_SIZE_MIN || (size & (size - 1)) != 0)
                        return bad(err, "%s.size %" PRIu64 ": expected a power of two from %u to %u", cpath,
                                   size, MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MAX);
                p->chunk_size = (uint32_t)size;
        }
        r = json_get_uint(JCTX(err), c, cpath, "block", !template, MANIFEST_BLOCK_SIZE_MAX, &size);
        if (r < 0)
                return r;
        if (r > 0) {
                if (!power_of_two_in(size, MANIFEST_BLOCK_SIZE_MIN, MANIFEST_BLOCK_SIZE_MAX))
                        return bad(err, "%s.block %" PRIu64 ": expected a power of two from %u to %u", cpath,
                                   size, MANIFEST_BLOCK_SIZE_MIN, MANIFEST_BLOCK_SIZE_MAX);
                p->block_size = (uint32_t)size;
        }
        p->window = MANIFEST_WINDOW_UNSET;
        r = json_get_uint(JCTX(err), c, cpath, "window", !template, MANIFEST_WINDOW_MAX, &size);
        if (r < 0)
                return r;
        if (r > 0) {
                if (size != 0 && !power_of_two_in(size, MANIFEST_WINDOW_MIN, MANIFEST_WINDOW_MAX))
                        return bad(err, "%s.window %" PRIu64 ": expected 0 or a power of two from %u to %u",
                                   cpath, size, MANIFEST_WINDOW_MIN, MANIFEST_WINDOW_MAX);
                p->window = (uint32_t)size;
        }
        r = json_get_uint(JCTX(err), c, cpath, "count", !template, MANIFEST_PAYLOAD_SIZE_MAX,
                          &p->chunk_count);
        if (r < 0)
                return r;
        r = json_get_string(JCTX(err), c, cpath, "compression", !template, MANIFEST_STRING_MAX, &s);
        if (r < 0)
                return r;
        if (r > 0) {
                p->chunk_compression = compression_from_string(s);
                if (p->chunk_compression != COMPRESSION_NONE && p->chunk_compression != COMPRESSION_ZSTD)
                        return bad(err, "%s.compression \"%s\": expected none or zstd", cpath,
                                   JSON_QUOTE(s));
        }
        p->has_chunks = true;
        return 1;
}

/* Format 2: sizes and chunks agree (every part given). */
static int check_chunks(const char *path, const ManifestPayload *p, UpkErr *err)
{
        uint64_t want = p->installed_size / p->chunk_size + (p->installed_size % p->chunk_size != 0);

        if (p->block_size > p->chunk_size)
                return bad(err, "%s.chunks.block: %" PRIu32 " is more than the chunk size %" PRIu32, path,
                           p->block_size, p->chunk_size);
        if (p->chunk_compression == COMPRESSION_NONE && p->window != 0)
                return bad(err,
                           "%s.chunks.window: %" PRIu32
                           ", but a payload whose blocks are not compressed has "
                           "window 0",
                           path, p->window);
        if (p->chunk_count != want)
                return bad(err,
                           "%s.chunks.count: %" PRIu64 ", but installed_size %" PRIu64
                           " in chunks of %" PRIu32 " bytes makes %" PRIu64,
                           path, p->chunk_count, p->installed_size, p->chunk_size, want);
        if (p->chunk_compression == COMPRESSION_NONE && p->size != p->installed_size)
                return bad(err,
                           "%s.size: %" PRIu64 " differs from installed_size %" PRIu64
                           " of a payload whose chunks are not compressed",
                           path, p->size, p->installed_size);
        if (p->size > p->installed_size)
                return bad(err, "%s.size: %" PRIu64 " is more than installed_size %" PRIu64, path, p->size,
                           p->installed_size);
        return 0;
}

static int parse_version(json_object *root, const char *key, bool required, char **ret_str, Version *ret,
                         UpkErr *err)
{
        const char *s;
        int r;

        r = json_get_string(JCTX(err), root, "", key, required, MANIFEST_STRING_MAX, &s);
        if (r <= 0)
                return r;
        if (version_parse(s, ret) < 0)
                return bad(err, "%s \"%s\": not a semantic version (like 1.2.3 or 1.2.3-rc.1)", key,
                           JSON_QUOTE(s));
        *ret_str = strdup(s);
        return *ret_str ? 1 : -ENOMEM;
}

static int parse_security(json_object *root, Manifest *m, UpkErr *err)
{
        json_object *sec, *adv;
        const char *s;
        int r;

        r = json_get(JCTX(err), root, "", "security", json_type_object, false, &sec);
        if (r <= 0)
                return r;
        r = json_check_keys(JCTX(err), sec, "security", security_keys);
        if (r < 0)
                return r;

        r = json_get_string(JCTX(err), sec, "security", "type", true, MANIFEST_STRING_MAX, &s);
        if (r < 0)
                return r;
        m->security_type = security_type_from_string(s);
        if (m->security_type < 0)
                return bad(err, "security.type \"%s\": expected security, feature or mixed", JSON_QUOTE(s));
        m->has_security = true;

        r = json_get(JCTX(err), sec, "security", "advisories", json_type_array, false, &adv);
        if (r < 0)
                return r;
        if (r > 0 && json_object_array_length(adv) > 0) {
                size_t n = json_object_array_length(adv);

                if (n > MANIFEST_ADVISORIES_MAX)
                        return bad(err, "security.advisories: %zu entries, more than the maximum of %u", n,
                                   MANIFEST_ADVISORIES_MAX);
                m->advisories = calloc(n, sizeof(char *));
                if (!m->advisories)
                        return upk_err_oom(err);
                m->n_advisories = n;
                for (size_t i = 0; i < n; i++) {
                        json_object *a = json_object_array_get_idx(adv, i);
                        if (!json_object_is_type(a, json_type_string))
                                return bad(err, "security.advisories[%zu]: expected a string", i);
                        s = json_object_get_string(a);
                        if (strlen(s) != (size_t)json_object_get_string_len(a))
                                return bad(err, "security.advisories[%zu]: contains a NUL character", i);
                        if (!advisory_valid(s))
                                return bad(
                                        err,
                                        "security.advisories[%zu] \"%s\": expected 1 to %u printable ASCII "
                                        "characters without spaces",
                                        i, JSON_QUOTE(s), MANIFEST_ADVISORY_MAX);
                        m->advisories[i] = strdup(s);
                        if (!m->advisories[i])
                                return upk_err_oom(err);
                }
        }

        r = json_get_dup_string(JCTX(err), sec, "security", "summary", false, MANIFEST_STRING_MAX,
                                &m->security_summary);
        return r < 0 ? r : 0;
}

static int parse_support(json_object *root, Manifest *m, UpkErr *err)
{
        json_object *sup;
        int r;

        r = json_get(JCTX(err), root, "", "support", json_type_object, false, &sup);
        if (r <= 0)
                return r;
        r = json_check_keys(JCTX(err), sup, "support", support_keys);
        if (r < 0)
                return r;
        r = json_get_dup_string(JCTX(err), sup, "support", "end", true, MANIFEST_STRING_MAX,
                                &m->support_end);
        if (r < 0)
                return r;
        if (!date_valid(m->support_end))
                return bad(err, "support.end \"%s\": not a calendar date like 2030-12-31 (1970 or later)",
                           JSON_QUOTE(m->support_end));
        r = json_get_dup_string(JCTX(err), sup, "support", "url", false, MANIFEST_STRING_MAX,
                                &m->support_url);
        return r < 0 ? r : 0;
}

static int parse_payload_v2(json_object *o, const char *path, ManifestPayload *p, UpkErr *err)
{
        int r;

        if (json_object_object_get_ex(o, "sha256", NULL))
                return bad(err,
                           "%s.sha256: not in format 2 (the chunk index, whose hash the manifest carries, "
                           "fixes the content)",
                           path);
        if (json_object_object_get_ex(o, "compression", NULL))
                return bad(err,
                           "%s.compression: not in format 2 (chunks.compression says how chunks are stored)",
                           path);
        r = json_get_uint(JCTX(err), o, path, "size", true, MANIFEST_PAYLOAD_SIZE_MAX, &p->size);
        if (r < 0)
                return r;
        r = json_get_uint(JCTX(err), o, path, "installed_size", true, MANIFEST_PAYLOAD_SIZE_MAX,
                          &p->installed_size);
        if (r < 0)
                return r;
        p->has_installed_size = true;
        p->has_digest = true; /* complete: the identity (sha256) is the bundle reader's to fill in */
        p->compression = COMPRESSION_NONE;
        r = parse_chunks(o, path, false, p, err);
        if (r < 0)
                return r;
        return check_chunks(path, p, err);
}

static int parse_payload(json_object *o, const char *path, int format, ManifestParseFlags flags,
                         ManifestPayload *p, UpkErr *err)
{
        bool template = flags & MANIFEST_PARSE_TEMPLATE;
        const char *s;
        int r, has_size, has_sha;

        r = json_check_keys(JCTX(err), o, path, payload_keys);
        if (r < 0)
                return r;

        r = json_get_dup_string(JCTX(err), o, path, "name", true, MANIFEST_NAME_MAX, &p->name);
        if (r < 0)
                return r;
        if (!charset_ok(p->name, MANIFEST_NAME_MAX, true, "._-"))
                return bad(err, "%s.name \"%s\": expected 1 to %u characters of A-Z a-z 0-9 . _ -", path,
                           JSON_QUOTE(p->name), MANIFEST_NAME_MAX);

        r = json_get_dup_string(JCTX(err), o, path, "file", true, MANIFEST_FILE_MAX, &p->file);
        if (r < 0)
                return r;
        if (!filename_is_plain(p->file, MANIFEST_FILE_MAX))
                return bad(err,
                           "%s.file \"%s\": not a plain file name (no '/', not '.' or '..', no control "
                           "characters)",
                           path, JSON_QUOTE(p->file));
        if (streq(p->file, "manifest.json") || streq(p->file, "manifest.json.sig") ||
            streq(p->file, "chunks.idx"))
                return bad(err, "%s.file \"%s\": the name is reserved for the bundle's own members", path,
                           JSON_QUOTE(p->file));

        r = json_get_dup_string(JCTX(err), o, path, "handler", true, HANDLER_MAX, &p->handler);
        if (r < 0)
                return r;
        if (!handler_valid(p->handler))
                return bad(
                        err,
                        "%s.handler \"%s\": expected raw, archive, file, exec:NAME or a plugin name of a-z "
                        "0-9 _ -",
                        path, JSON_QUOTE(p->handler));

        if (json_object_object_get_ex(o, "slot_class", NULL) ==
            json_object_object_get_ex(o, "target", NULL)) {
                if (json_object_object_get_ex(o, "slot_class", NULL))
                        return bad(err, "%s: both \"slot_class\" and \"target\" are given, use exactly one",
                                   path);
                return bad(err, "%s: missing required key \"slot_class\" or \"target\"", path);
        }
        r = json_get_dup_string(JCTX(err), o, path, "slot_class", false, MANIFEST_NAME_MAX, &p->slot_class);
        if (r < 0)
                return r;
        if (p->slot_class && !charset_ok(p->slot_class, MANIFEST_NAME_MAX, false, "_-"))
                return bad(err, "%s.slot_class \"%s\": expected 1 to %u characters of a-z 0-9 _ -", path,
                           JSON_QUOTE(p->slot_class), MANIFEST_NAME_MAX);
        r = json_get_dup_string(JCTX(err), o, path, "target", false, MANIFEST_PATH_MAX, &p->target);
        if (r < 0)
                return r;
        if (p->target && !target_valid(p->target))
                return bad(
                        err,
                        "%s.target \"%s\": expected an absolute path without \"..\" components or control "
                        "characters",
                        path, JSON_QUOTE(p->target));

        if (format == 2 && !template)
                return parse_payload_v2(o, path, p, err);
        if (!template && json_object_object_get_ex(o, "chunks", NULL))
                return bad(err, "%s.chunks: only in format 2", path);
        if (template) {
                r = parse_chunks(o, path, true, p, err);
                if (r < 0)
                        return r;
                if (format == 2 && json_object_object_get_ex(o, "sha256", NULL))
                        return bad(err, "%s.sha256: not in format 2", path);
        }

        /* A template (for `bundle create`) may leave out size and sha256, but not just one of them. */
        has_size = json_get_uint(JCTX(err), o, path, "size", !template, MANIFEST_PAYLOAD_SIZE_MAX, &p->size);
        if (has_size < 0)
                return has_size;
        has_sha = json_get_string(JCTX(err), o, path, "sha256", !template, MANIFEST_STRING_MAX, &s);
        if (has_sha < 0)
                return has_sha;
        if (has_sha && (strlen(s) != SHA256_HEX_LEN || hex_decode(s, p->sha256, sizeof(p->sha256)) < 0))
                return bad(err, "%s.sha256: expected %u lower-case hex digits", path, SHA256_HEX_LEN);
        if (has_size != has_sha)
                return bad(err,
                           "%s: missing required key \"%s\" (a template gives both \"size\" and \"sha256\" "
                           "or neither)",
                           path, has_size ? "sha256" : "size");
        p->has_digest = has_size;

        p->compression = COMPRESSION_NONE;
        r = json_get_string(JCTX(err), o, path, "compression", false, MANIFEST_STRING_MAX, &s);
        if (r < 0)
                return r;
        if (r > 0) {
                p->compression = compression_from_string(s);
                if (p->compression < 0 || p->compression == COMPRESSION_NONE)
                        return bad(err, "%s.compression \"%s\": expected zstd, xz or gzip", path,
                                   JSON_QUOTE(s));
        }

        r = json_get_uint(JCTX(err), o, path, "installed_size", false, MANIFEST_PAYLOAD_SIZE_MAX,
                          &p->installed_size);
        if (r < 0)
                return r;
        p->has_installed_size = r > 0;
        if (p->compression != COMPRESSION_NONE) {
                /* The hard cap for decompression: without it a small payload could expand without end. */
                if (!p->has_installed_size && !template)
                        return bad(err,
                                   "%s: missing required key \"installed_size\" (required with compression)",
                                   path);
        } else if (p->has_installed_size) {
                if (p->has_digest && p->installed_size != p->size)
                        return bad(err,
                                   "%s.installed_size: %" PRIu64 " differs from size %" PRIu64
                                   " of an uncompressed payload",
                                   path, p->installed_size, p->size);
        } else if (p->has_digest) {
                p->installed_size = p->size;
                p->has_installed_size = true;
        }
        return 0;
}

static int parse_payloads(json_object *root, ManifestParseFlags flags, Manifest *m, UpkErr *err)
{
        char path[JSON_KEY_PATH_MAX];
        json_object *arr;
        size_t n;
        int r;

        r = json_get(JCTX(err), root, "", "payloads", json_type_array, true, &arr);
        if (r < 0)
                return r;
        n = json_object_array_length(arr);
        if (n == 0)
                return bad(err, "payloads: the list is empty, expected at least one payload");
        if (n > MANIFEST_PAYLOADS_MAX)
                return bad(err, "payloads: %zu entries, more than the maximum of %u", n,
                           MANIFEST_PAYLOADS_MAX);

        m->payloads = calloc(n, sizeof(ManifestPayload));
        if (!m->payloads)
                return upk_err_oom(err);
        m->n_payloads = n;
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(arr, i);
                ManifestPayload *p = &m->payloads[i];

                snprintf(path, sizeof(path), "payloads[%zu]", i);
                if (!json_object_is_type(o, json_type_object))
                        return bad(err, "%s: expected an object", path);
                r = parse_payload(o, path, m->format, flags, p, err);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++) {
                        if (streq(m->payloads[j].name, p->name))
                                return bad(err, "%s.name \"%s\" is used twice", path, JSON_QUOTE(p->name));
                        if (streq(m->payloads[j].file, p->file))
                                return bad(err, "%s.file \"%s\" is used twice", path, JSON_QUOTE(p->file));
                }
        }
        return 0;
}

/* Format 2: `index`, the size and hash of chunks.idx (a template may leave it out: it is made anew). */
static int parse_index(json_object *root, ManifestParseFlags flags, Manifest *m, UpkErr *err)
{
        bool template = flags & MANIFEST_PARSE_TEMPLATE;
        json_object *idx;
        int r;

        if (m->format == 1) {
                if (json_object_object_get_ex(root, "index", NULL))
                        return bad(err, "index: only in format 2");
                return 0;
        }
        if (!template && !json_object_object_get_ex(root, "index", NULL))
                return bad(err, "missing required key \"index\" (required in format 2)");
        r = json_get(JCTX(err), root, "", "index", json_type_object, !template, &idx);
        if (r <= 0)
                return r;
        r = json_check_keys(JCTX(err), idx, "index", index_keys);
        if (r < 0)
                return r;
        r = json_get_uint(JCTX(err), idx, "index", "size", true, MANIFEST_INDEX_SIZE_MAX, &m->index_size);
        if (r < 0)
                return r;
        r = parse_sha256(idx, "index", "sha256", true, m->index_sha256, err);
        if (r < 0)
                return r;
        m->has_index = true;
        return 0;
}

static int parse_root(json_object *root, ManifestParseFlags flags, Manifest *m, UpkErr *err)
{
        json_object *v = NULL;
        int r;

        /* The format comes first: a newer format may well have keys this one does not know. */
        r = json_get(JCTX(err), root, "", "format", json_type_int, true, &v);
        if (r < 0)
                return r;
        if (json_object_get_int64(v) < 0)
                return bad(err, "format: unsupported format %" PRId64, json_object_get_int64(v));
        if (json_object_get_uint64(v) != 1 && json_object_get_uint64(v) != 2)
                return bad(err, "format: unsupported format %" PRIu64, json_object_get_uint64(v));
        m->format = (int)json_object_get_uint64(v);

        r = json_check_keys(JCTX(err), root, "", top_keys);
        if (r < 0)
                return r;

        r = json_get_dup_string(JCTX(err), root, "", "compatible", true, MANIFEST_COMPATIBLE_MAX,
                                &m->compatible);
        if (r < 0)
                return r;
        if (!charset_ok(m->compatible, MANIFEST_COMPATIBLE_MAX, true, "._+-"))
                return bad(err, "compatible \"%s\": expected 1 to %u characters of A-Z a-z 0-9 . _ + -",
                           JSON_QUOTE(m->compatible), MANIFEST_COMPATIBLE_MAX);

        r = parse_version(root, "version", true, &m->version_str, &m->version, err);
        if (r < 0)
                return r;
        r = parse_version(root, "min_version", false, &m->min_version_str, &m->min_version, err);
        if (r < 0)
                return r;

        r = json_get_dup_string(JCTX(err), root, "", "build", true, MANIFEST_STRING_MAX, &m->build);
        if (r < 0)
                return r;
        if (!rfc3339_valid(m->build))
                return bad(err,
                           "build \"%s\": not an RFC 3339 date and time like 2026-11-25T10:00:00Z (1970 or "
                           "later)",
                           JSON_QUOTE(m->build));

        r = json_get_dup_string(JCTX(err), root, "", "description", false, MANIFEST_STRING_MAX,
                                &m->description);
        if (r < 0)
                return r;

        r = parse_security(root, m, err);
        if (r < 0)
                return r;
        r = parse_support(root, m, err);
        if (r < 0)
                return r;

        m->reboot = true;
        r = json_get_bool(JCTX(err), root, "", "reboot", false, &m->reboot);
        if (r < 0)
                return r;

        r = parse_index(root, flags, m, err);
        if (r < 0)
                return r;
        return parse_payloads(root, flags, m, err);
}

int manifest_parse(const void *data, size_t size, ManifestParseFlags flags, Manifest **ret, UpkErr *err)
{
        static const JsonStrictOptions json_options = {
                .what = "manifest",
                .kind = UPK_ERR_MANIFEST,
                .depth_max = MANIFEST_DEPTH_MAX,
                .objects_max = OBJECTS_MAX, /* a document with more objects cannot pass the schema anyway */
        };
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        int r;

        if (!data && size > 0)
                return upk_err(err, UPK_ERR_MANIFEST, -EINVAL, "manifest: %zu bytes announced, none given",
                               size);
        if (size > MANIFEST_SIZE_MAX)
                return bad(err, "%zu bytes, more than the maximum of %u bytes", size, MANIFEST_SIZE_MAX);

        r = json_parse_strict(data, size, &json_options, &root, err);
        if (r < 0)
                return r;

        m = calloc(1, sizeof(Manifest));
        if (!m)
                return upk_err_oom(err);
        r = parse_root(root, flags, m, err);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

/* ---- serialisation ---- */

static int add(json_object *obj, const char *key, json_object *v)
{
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(obj, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int append(json_object *arr, json_object *v)
{
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(arr, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_string(json_object *obj, const char *key, const char *s)
{
        return add(obj, key, json_object_new_string(s));
}

static int add_string_opt(json_object *obj, const char *key, const char *s)
{
        return s ? add_string(obj, key, s) : 0;
}

static int payload_to_json(const ManifestPayload *p, int format, json_object **ret)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        char hex[2 * sizeof(p->sha256) + 1];
        int r;

        if (!o)
                return -ENOMEM;
        hex_encode(p->sha256, sizeof(p->sha256), hex);
        r = add_string(o, "name", p->name);
        if (r >= 0)
                r = add_string(o, "file", p->file);
        if (r >= 0)
                r = add_string(o, "handler", p->handler);
        if (r >= 0)
                r = add_string_opt(o, "slot_class", p->slot_class);
        if (r >= 0)
                r = add_string_opt(o, "target", p->target);
        if (r >= 0)
                r = add(o, "size", json_object_new_uint64(p->size));
        if (r >= 0 && format == 2) {
                json_object *c = json_object_new_object();

                r = add(o, "installed_size", json_object_new_uint64(p->installed_size));
                if (r >= 0)
                        r = add(o, "chunks", c);
                else
                        json_object_put(c);
                if (r >= 0)
                        r = add(c, "size", json_object_new_uint64(p->chunk_size));
                if (r >= 0)
                        r = add(c, "block", json_object_new_uint64(p->block_size));
                if (r >= 0)
                        r = add(c, "count", json_object_new_uint64(p->chunk_count));
                if (r >= 0)
                        r = add_string(c, "compression", compression_to_string(p->chunk_compression));
                if (r >= 0)
                        r = add(c, "window", json_object_new_uint64(p->window));
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(o);
                return 0;
        }
        if (r >= 0)
                r = add_string(o, "sha256", hex);
        if (r >= 0 && p->compression != COMPRESSION_NONE) {
                r = add_string(o, "compression", compression_to_string(p->compression));
                if (r >= 0)
                        r = add(o, "installed_size", json_object_new_uint64(p->installed_size));
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static bool payload_serialisable(const ManifestPayload *p, int format)
{
        if (!p->name || !p->file || !p->handler || (p->slot_class == NULL) == (p->target == NULL))
                return false;
        if (format == 2)
                return p->has_digest && p->has_installed_size && p->has_chunks &&
                       power_of_two_in(p->chunk_size, MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MAX) &&
                       power_of_two_in(p->block_size, MANIFEST_BLOCK_SIZE_MIN, MANIFEST_BLOCK_SIZE_MAX) &&
                       (p->window == 0 ||
                        power_of_two_in(p->window, MANIFEST_WINDOW_MIN, MANIFEST_WINDOW_MAX)) &&
                       (p->chunk_compression == COMPRESSION_NONE ||
                        p->chunk_compression == COMPRESSION_ZSTD) &&
                       check_chunks("", p, NULL) >= 0;
        if (!p->has_digest || p->has_chunks)
                return false;
        if (!compression_to_string(p->compression))
                return false;
        if (p->compression != COMPRESSION_NONE)
                return p->has_installed_size; /* the reader needs it */
        return !p->has_installed_size || p->installed_size == p->size;
}

int manifest_to_json(const Manifest *m, char **ret, size_t *ret_size)
{
        _cleanup_(json_object_putp) json_object *root = NULL;
        const char *s;
        size_t len;
        char *buf;
        int r;

        if (!m || (m->format != 1 && m->format != 2) || (m->format == 2 && !m->has_index) ||
            !m->compatible || !m->version_str || !m->build || m->n_payloads == 0 ||
            (m->has_security && !security_type_to_string(m->security_type)))
                return -EINVAL;
        for (size_t i = 0; i < m->n_payloads; i++)
                if (!payload_serialisable(&m->payloads[i], m->format))
                        return -EINVAL;

        root = json_object_new_object();
        if (!root)
                return -ENOMEM;
        r = add(root, "format", json_object_new_int(m->format));
        if (r >= 0)
                r = add_string(root, "compatible", m->compatible);
        if (r >= 0)
                r = add_string(root, "version", m->version_str);
        if (r >= 0)
                r = add_string_opt(root, "min_version", m->min_version_str);
        if (r >= 0)
                r = add_string(root, "build", m->build);
        if (r >= 0)
                r = add_string_opt(root, "description", m->description);
        if (r < 0)
                return r;

        if (m->has_security) {
                json_object *sec = json_object_new_object();

                r = add(root, "security", sec);
                if (r >= 0)
                        r = add_string(sec, "type", security_type_to_string(m->security_type));
                if (r >= 0 && m->n_advisories > 0) {
                        json_object *adv = json_object_new_array();

                        r = add(sec, "advisories", adv);
                        for (size_t i = 0; r >= 0 && i < m->n_advisories; i++)
                                r = m->advisories[i] ? append(adv, json_object_new_string(m->advisories[i]))
                                                     : -EINVAL;
                }
                if (r >= 0)
                        r = add_string_opt(sec, "summary", m->security_summary);
                if (r < 0)
                        return r;
        }

        if (m->support_end) {
                json_object *sup = json_object_new_object();

                r = add(root, "support", sup);
                if (r >= 0)
                        r = add_string(sup, "end", m->support_end);
                if (r >= 0)
                        r = add_string_opt(sup, "url", m->support_url);
                if (r < 0)
                        return r;
        }

        r = add(root, "reboot", json_object_new_boolean(m->reboot));
        if (r >= 0 && m->format == 2) {
                json_object *idx = json_object_new_object();
                char hex[2 * sizeof(m->index_sha256) + 1];

                hex_encode(m->index_sha256, sizeof(m->index_sha256), hex);
                r = add(root, "index", idx);
                if (r >= 0)
                        r = add(idx, "size", json_object_new_uint64(m->index_size));
                if (r >= 0)
                        r = add_string(idx, "sha256", hex);
        }
        if (r >= 0) {
                json_object *arr = json_object_new_array();

                r = add(root, "payloads", arr);
                for (size_t i = 0; r >= 0 && i < m->n_payloads; i++) {
                        json_object *o;

                        r = payload_to_json(&m->payloads[i], m->format, &o);
                        if (r >= 0)
                                r = append(arr, o);
                }
        }
        if (r < 0)
                return r;

        s = json_object_to_json_string_length(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE,
                                              &len);
        if (!s)
                return -ENOMEM;
        buf = malloc(len + 2);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, s, len);
        buf[len] = '\n';
        buf[len + 1] = 0;

        *ret = buf;
        if (ret_size)
                *ret_size = len + 1;
        return 0;
}
