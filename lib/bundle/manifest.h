/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bundle manifest (manifest.json, format 1 or 2): strict parsing with json-c and deterministic
 * serialisation. See man/upkeep-bundle.5.scd for the schema. */

#include "error.h"
#include "version.h"

#define MANIFEST_SIZE_MAX         (1024u * 1024u) /* bytes of manifest.json */
#define MANIFEST_DEPTH_MAX        8               /* JSON nesting */
#define MANIFEST_PAYLOADS_MAX     64
#define MANIFEST_ADVISORIES_MAX   256
#define MANIFEST_STRING_MAX       4096 /* description, summary, url */
#define MANIFEST_NAME_MAX         64   /* payload name, slot class, handler */
#define MANIFEST_FILE_MAX         100  /* member names fit a plain ustar name */
#define MANIFEST_PATH_MAX         4096 /* payload target */
#define MANIFEST_ADVISORY_MAX     64
#define MANIFEST_COMPATIBLE_MAX   128
#define MANIFEST_PAYLOAD_SIZE_MAX (UINT64_C(1) << 46) /* 64 TiB: any size above is an attack */
#define MANIFEST_CHUNK_SIZE_MIN   4096u               /* format 2: chunks.size, a power of two */
#define MANIFEST_CHUNK_SIZE_MAX   (1024u * 1024u)
#define MANIFEST_BLOCK_SIZE_MIN   4096u /* format 2: chunks.block, a power of two */
#define MANIFEST_BLOCK_SIZE_MAX   32768u
#define MANIFEST_WINDOW_MIN       4096u /* format 2: chunks.window, 0 or a power of two */
#define MANIFEST_WINDOW_MAX       (8u * 1024u * 1024u)
#define MANIFEST_WINDOW_UNSET     UINT32_MAX            /* a template that does not give chunks.window */
#define MANIFEST_INDEX_SIZE_MAX   (64u * 1024u * 1024u) /* bytes of chunks.idx, stored and decompressed */

typedef enum Compression {
        COMPRESSION_NONE,
        COMPRESSION_GZIP,
        COMPRESSION_XZ,
        COMPRESSION_ZSTD,
        _COMPRESSION_MAX,
        _COMPRESSION_INVALID = -EINVAL,
} Compression;

typedef enum SecurityType {
        SECURITY_TYPE_SECURITY,
        SECURITY_TYPE_FEATURE,
        SECURITY_TYPE_MIXED,
        _SECURITY_TYPE_MAX,
        _SECURITY_TYPE_INVALID = -EINVAL,
} SecurityType;

typedef struct ManifestPayload {
        char *name;       /* unique id: [A-Za-z0-9._-], at most MANIFEST_NAME_MAX */
        char *file;       /* tar member name: plain file name, unique, not manifest.json(.sig), chunks.idx */
        char *handler;    /* raw | archive | file | exec:NAME | plugin name */
        char *slot_class; /* exactly one of slot_class and target is set */
        char *target;     /* absolute path */
        uint64_t size;    /* of the stored bytes */
        /* Format 1: of the stored bytes. Format 2: the payload's identity, the SHA-256 of its slice of
         * chunks.idx (not in the manifest: the bundle reader fills it in once the index checked out). */
        uint8_t sha256[32];
        bool has_digest; /* false only for templates (bundle create fills size and sha256) */
        /* Format 1: how the stored bytes are compressed as one stream. Format 2: COMPRESSION_NONE (a
         * template may still say how its input file is compressed). */
        Compression compression;
        uint64_t installed_size; /* bytes after decompression; == size when not compressed */
        bool has_installed_size;
        /* Format 2 (`chunks`): chunk size and block size (powers of two), the chunk count, how blocks may
         * be stored (none or zstd) and the window of a zstd block's prefix. In a template each part may be
         * 0 / _COMPRESSION_INVALID / MANIFEST_WINDOW_UNSET: not given. */
        bool has_chunks;
        uint32_t chunk_size;
        uint32_t block_size;
        uint64_t chunk_count;
        Compression chunk_compression;
        uint32_t window;
} ManifestPayload;

typedef struct Manifest {
        int format;
        char *compatible;
        char *version_str;
        Version version;
        char *min_version_str; /* NULL when absent */
        Version min_version;
        char *build;       /* RFC 3339 */
        char *description; /* NULL when absent */
        bool has_security;
        SecurityType security_type;
        char **advisories;
        size_t n_advisories;
        char *security_summary; /* NULL when absent */
        char *support_end;      /* YYYY-MM-DD, NULL when absent */
        char *support_url;      /* NULL when absent */
        bool reboot;
        /* Format 2: size and SHA-256 of chunks.idx (`index`). */
        bool has_index;
        uint64_t index_size;
        uint8_t index_sha256[32];
        ManifestPayload *payloads;
        size_t n_payloads;
} Manifest;

typedef enum ManifestParseFlags {
        /* A template for `bundle create`: size and sha256 (format 2: size, installed_size, the chunk
         * count and the index) may be missing (and are then filled). A template of either format may
         * give `compression` (how the input file is compressed) and a partial `chunks`. */
        MANIFEST_PARSE_TEMPLATE = 1 << 0,
} ManifestParseFlags;

/* Parse `size` bytes (need not be NUL-terminated). Any schema violation: -EBADMSG with an UpkErr of
 * kind UPK_ERR_MANIFEST naming the key (as a JSON path like payloads[1].sha256) and the reason. */
int manifest_parse(const void *data, size_t size, ManifestParseFlags flags, Manifest **ret, UpkErr *err);
Manifest *manifest_free(Manifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manifest *, manifest_free);

/* Serialise to JSON with keys in a fixed order and a final newline; same manifest, same bytes.
 * Fails with -EINVAL if any payload lacks its digest (format 1) or its sizes and chunks, or the index
 * is missing (format 2). */
int manifest_to_json(const Manifest *m, char **ret, size_t *ret_size);

const char *compression_to_string(Compression c);
Compression compression_from_string(const char *s);
/* Content bytes of chunk i of a format-2 payload. */
uint32_t manifest_chunk_length(const ManifestPayload *p, uint64_t i);
/* Format 2: the number of blocks of a payload, and the content bytes of block j. */
uint64_t manifest_block_count(const ManifestPayload *p);
uint32_t manifest_block_length(const ManifestPayload *p, uint64_t j);
const char *security_type_to_string(SecurityType t);
SecurityType security_type_from_string(const char *s);
