/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where updates come from ([source] type, upkeep.conf(5)), behind one interface:
 *   check:  source_check() → an Offer (the newest bundle for this device above the running version) or
 *           none; blocking, run in the job's worker thread;
 *   fetch:  source_stream_open_offer() → a byte stream for the installer (BundleNextFunc), opened in the
 *           loop thread, read in the worker thread.
 * Types: `tuf` (a TUF repository over HTTP(S): the refresh of lib/tuf.c with downloads by lib/fetch.c;
 * trusted metadata under DATA_DIR/tuf/; the target streamed with its length and hashes checked as it
 * streams), `local` (a folder of bundles: each one's signed manifest read with the keyring), `none`.
 * `hawkbit` (an Eclipse hawkBit server's DDI API, hawkbit.h; -Dhawkbit): the deployment's bundle
 * streamed with the server's credentials, its size and sha256 checked as it streams.
 *
 * Threads: a Source is used by one thread at a time (the manager runs one job at a time). */

#include "conf.h"
#include "fetch.h"
#include "manifest.h"
#include "tuf.h"

#define SOURCE_LOCAL_BUNDLES_MAX 1024 /* *.upk files looked at in a local folder */
#define SOURCE_HEAD_MAX          (MANIFEST_SIZE_MAX + SIGNATURE_SIZE_MAX + 64u * 1024u)
#define SOURCE_URL_BUNDLE_MAX    (UINT64_C(1) << 46) /* a bundle from a URL: no length is known */
#define SOURCE_TUF_DIR           "tuf"               /* under the data dir */
#define SOURCE_FD_READ_MAX       (512u * 1024u)      /* bytes one read of a handed-over descriptor takes */
/* Against TUF's "slow retrieval" attack (upkeepd(8)): a metadata download (and the read of a bundle's
 * head for the security policy) must end within SOURCE_METADATA_ALLOWANCE_SEC + its maximum length /
 * SOURCE_METADATA_MIN_RATE seconds; a bundle download must average SOURCE_BUNDLE_MIN_RATE bytes/s or
 * more once SOURCE_BUNDLE_GRACE_SEC have passed. In a test build (HAVE_TEST_HOOKS, tests/README.md)
 * UPKEEP_TEST_METADATA_MIN_RATE, UPKEEP_TEST_METADATA_ALLOWANCE_MS, UPKEEP_TEST_BUNDLE_MIN_RATE and
 * UPKEEP_TEST_BUNDLE_GRACE_SEC replace them, and UPKEEP_TEST_BUNDLE_STALL_SEC the seconds without a byte
 * after which a bundle download is given up and resumed (FETCH_LOW_SPEED_TIME_DEFAULT). */
#define SOURCE_METADATA_MIN_RATE      4096u /* bytes/s */
#define SOURCE_METADATA_ALLOWANCE_SEC 30u   /* the connection, TLS and the first byte */
#define SOURCE_BUNDLE_MIN_RATE        1024u /* bytes/s */
#define SOURCE_BUNDLE_GRACE_SEC       60u

/* The options of a bundle download from the configuration, with the limits above (a delta's ranges too). */
void source_bundle_fetch_options(const Config *c, FetchOptions *fo);

typedef struct Offer {
        char *version;
        char *name;        /* the TUF target path, or the file name in the local folder */
        char *location;    /* the URL (tuf) or the absolute path (local) of the bundle */
        uint64_t length;   /* bytes, 0 when unknown */
        TufTarget *target; /* tuf: the length and hashes the bytes must match */
        bool has_manifest; /* the bundle's signed manifest was read (local: always; tuf: on request) */
        /* hawkbit: the action (NULL for the other sources), its feedback URL, the artifact's sha256 (hex,
         * may be NULL), whether the server forces the update, and a line per artifact left out */
        char *action_id;
        char *feedback_url;
        char *sha256;
        bool forced;
        bool kept; /* location is the verified copy kept in DATA_DIR: installed from that file */
        /* hawkbit: the deployment waits for the user's consent (never installed by itself;
         * source_set_consent() answers), or the user confirmed it (install it now) */
        bool needs_consent;
        bool approved;
        char **ignored;
        bool has_security;
        SecurityType security;
} Offer;

Offer *offer_free(Offer *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(Offer *, offer_free);
/* The same bundle (same name, length and location)? */
bool offer_same(const Offer *a, const Offer *b);

typedef struct Source Source;

/* Checks the [source] keys: tuf needs url (or metadata-url and targets-url) and a trusted root
 * ([source] root, or DATA_DIR/tuf/root.json from an earlier run); local needs dir; hawkbit needs url,
 * a controller id and, unless auth = none, token-file. UPK_ERR_CONFIG naming the key. */
int source_new(const Config *c, Source **ret, UpkErr *err);
Source *source_free(Source *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Source *, source_free);
SourceType source_get_type(const Source *s);

/* Worker thread: ask the source. 0 with *ret NULL: nothing newer. `want_manifest`: read the offered
 * bundle's signed manifest too (its first bytes only), for the security policy. */
int source_check(Source *s, const char *current_version, bool want_manifest, Offer **ret, UpkErr *err);
/* Any thread: the running source_check() stops its download at once and fails with -ECANCELED (a
 * cancel that comes while no check runs is forgotten by the next one). */
void source_cancel_check(Source *s);

/* Before a check: the user's answer to the offer that needs consent (hawkbit), sent by that check.
 * -EOPNOTSUPP for the other sources. */
int source_set_consent(Source *s, const char *action, bool confirm, const char *reason);

/* AutoUpdate switched (updatectl enable|disable): hawkbit switches the server's auto-confirm the same way
 * at the next check; the other sources ignore it. */
void source_set_auto_update(Source *s, bool enable);

/* The interval the source asks for until the next check (hawkBit's sleep); 0: the configured one. */
uint64_t source_next_check_usec(const Source *s);
/* After a failed check: the wait the server asked for (hawkBit: Retry-After of a 429 or 503, bounded);
 * 0: none, the backoff alone decides. */
uint64_t source_retry_after_usec(const Source *s);
/* Loop thread, for an install of the source's offer `o` (hawkbit reports them to the server; the other
 * sources ignore them). source_install_finished() returns true when a report is due that a check should
 * deliver soon. */
void source_install_started(Source *s, FetchEngine *e, const Offer *o);
/* True when the server cancelled the offer's action meanwhile (hawkbit): the caller stops the install. */
bool source_install_progress(Source *s, FetchEngine *e, uint64_t done, uint64_t total);
bool source_install_finished(Source *s, FetchEngine *e, bool ok, const UpkErr *err);

typedef struct SourceStream SourceStream;

/* Loop thread: the bytes of a tuf offer (capped at the target's length, hashes checked at the end,
 * before the installer activates anything) or of an http(s) URL. */
int source_stream_open_offer(FetchEngine *e, const Config *c, const Offer *o, SourceStream **ret,
                             UpkErr *err);
/* Loop thread: the bytes of a hawkbit offer (o->action_id set), with the server's credentials; its
 * length and sha256 (when the server names them) checked as the bytes stream, before the installer
 * activates anything. */
int source_stream_open_action(FetchEngine *e, Source *src, const Offer *o, SourceStream **ret, UpkErr *err);
/* Loop thread: the request headers every download of the hawkbit offer `o` carries (the server's
 * credentials), for the range requests of a delta of it: a NULL-terminated vector (NULL when none)
 * holding a secret, which the caller frees with strv_free_erase(). */
int source_action_headers(Source *src, const Offer *o, char ***ret, UpkErr *err);
int source_stream_open_url(FetchEngine *e, const Config *c, const char *url, SourceStream **ret,
                           UpkErr *err);
/* Any thread: the bytes of a descriptor the caller owns (a pipe: "updatectl install -"); takes `fd`
 * (also on failure). `name` names it in messages. A read that waits for bytes ends at once on
 * source_stream_cancel(). */
int source_stream_open_fd(int fd, const char *name, SourceStream **ret, UpkErr *err);
/* Worker thread: BundleNextFunc. */
ssize_t source_stream_next(void *userdata, const void **ret_buf);
/* Why the stream failed (kind UPK_ERR_NONE: it did not); once the worker is done with it. */
void source_stream_get_error(SourceStream *s, UpkErr *ret);
/* Loop thread: is the download still running? (Never for a descriptor.) */
bool source_stream_transferring(SourceStream *s);
/* Any thread: stop the transfer; the reader gets -ECANCELED. */
void source_stream_cancel(SourceStream *s);
/* Loop thread, once the worker no longer reads. */
SourceStream *source_stream_free(SourceStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SourceStream *, source_stream_free);
