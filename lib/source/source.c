/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bundle.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "openssl-util.h"
#include "path-util.h"
#include "source.h"
#include "strv.h"
#include "version.h"
#if HAVE_HAWKBIT
#include "hawkbit.h"
#endif

/* Metadata downloads give up sooner than bundle downloads: the next check comes anyway. */
#define METADATA_RETRIES          2
#define METADATA_BACKOFF_MSEC     500
#define METADATA_BACKOFF_MAX_MSEC 2000

struct Source {
        const Config *config;
        SourceType type;
        char *tuf_dir;      /* DATA_DIR/tuf */
        char *metadata_url; /* tuf */
        char *targets_url;
        int cancel_fd; /* an eventfd: source_cancel_check() */
#if HAVE_HAWKBIT
        Hawkbit *hawkbit;
#endif
};

Offer *offer_free(Offer *o)
{
        if (!o)
                return NULL;
        free(o->version);
        free(o->name);
        free(o->location);
        free(o->action_id);
        free(o->feedback_url);
        free(o->sha256);
        strv_free(o->ignored);
#if HAVE_TUF
        tuf_target_free(o->target);
#endif
        free(o);
        return NULL;
}

bool offer_same(const Offer *a, const Offer *b)
{
        if (!a || !b)
                return a == b;
        return streq(a->name, b->name) && streq(a->location, b->location) && a->length == b->length &&
               streq(a->version, b->version);
}

Source *source_free(Source *s)
{
        if (!s)
                return NULL;
        free(s->tuf_dir);
        free(s->metadata_url);
        free(s->targets_url);
        safe_close(s->cancel_fd);
#if HAVE_HAWKBIT
        hawkbit_free(s->hawkbit);
#endif
        free(s);
        return NULL;
}

void source_cancel_check(Source *s)
{
        (void)eventfd_write(s->cancel_fd, 1);
}

/* Test builds may shorten the limits (source.h). */
static unsigned limit(const char *name, unsigned value)
{
#if HAVE_TEST_HOOKS
        const char *v = secure_getenv(name);
        uint64_t u;

        if (v && safe_atou64(v, &u) >= 0 && u > 0 && u <= UINT32_MAX)
                return (unsigned)u;
#endif
        return value;
}

#if HAVE_TUF
/* The deadline of a metadata download of at most `max_length` bytes. */
static uint64_t metadata_deadline_msec(uint64_t max_length)
{
        uint64_t allowance =
                limit("UPKEEP_TEST_METADATA_ALLOWANCE_MS", SOURCE_METADATA_ALLOWANCE_SEC * 1000u);

        return allowance +
               max_length * 1000u / limit("UPKEEP_TEST_METADATA_MIN_RATE", SOURCE_METADATA_MIN_RATE);
}
#endif

SourceType source_get_type(const Source *s)
{
        return s->type;
}

#if HAVE_TUF
static int source_setup_tuf(Source *s, UpkErr *err)
{
        const Config *c = s->config;
        _cleanup_free_ char *trusted = NULL;

        if (!c->source_url && (!c->source_metadata_url || !c->source_targets_url))
                return upk_err(
                        err, UPK_ERR_CONFIG, -EINVAL,
                        "[source] url: required for type = tuf (or both metadata-url and targets-url)");
        s->metadata_url = c->source_metadata_url ? strdup(c->source_metadata_url)
                                                 : path_join(c->source_url, "metadata");
        s->targets_url =
                c->source_targets_url ? strdup(c->source_targets_url) : path_join(c->source_url, "targets");
        s->tuf_dir = strdup_printf("%s/%s", c->data_dir, SOURCE_TUF_DIR);
        if (!s->metadata_url || !s->targets_url || !s->tuf_dir)
                return upk_err_oom(err);
        trusted = strdup_printf("%s/root.json", s->tuf_dir);
        if (!trusted)
                return upk_err_oom(err);
        if (!c->source_root && access(trusted, F_OK) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "[source] root: required for type = tuf: the trusted root.json of the "
                               "repository (%s does not exist yet)",
                               trusted);
        if (c->source_root && access(c->source_root, R_OK) < 0 && access(trusted, F_OK) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -errno, "[source] root: cannot read %s: %m",
                               c->source_root);
        return 0;
}
#else
static int source_setup_tuf(Source *s, UpkErr *err)
{
        return upk_err(err, UPK_ERR_CONFIG, -EOPNOTSUPP,
                       "[source] type = tuf: this upkeepd was built without TUF support (-Dtuf=false)");
}
#endif

int source_new(const Config *c, Source **ret, UpkErr *err)
{
        _cleanup_(source_freep) Source *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return upk_err_oom(err);
        s->config = c;
        s->type = c->source_type;
        s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->cancel_fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot create an eventfd: %m");
        switch (s->type) {
        case SOURCE_NONE:
                break;
        case SOURCE_TUF:
                r = source_setup_tuf(s, err);
                if (r < 0)
                        return r;
                break;
        case SOURCE_LOCAL:
                if (!c->source_dir)
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "[source] dir: required for type = local (the folder of bundles)");
                break;
        case SOURCE_HAWKBIT:
#if HAVE_HAWKBIT
                r = hawkbit_new(c, s->cancel_fd, &s->hawkbit, err);
                if (r < 0)
                        return r;
                break;
#else
                return upk_err(err, UPK_ERR_CONFIG, -EOPNOTSUPP,
                               "[source] type = hawkbit: this upkeepd was built without hawkBit support "
                               "(-Dhawkbit=false)");
#endif
        case _SOURCE_MAX:
        case _SOURCE_INVALID:
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "[source] type: unknown");
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- the signed manifest of a bundle ---- */

static void offer_take_manifest(Offer *o, const Manifest *m)
{
        o->has_manifest = true;
        o->has_security = m->has_security;
        o->security = m->security_type;
}

#if HAVE_TUF
/* custom.manifest_sha256 of a TUF target against the bundle's manifest.json bytes: 0 when the target
 * names none or it matches; UPK_ERR_PAYLOAD naming the target and both digests otherwise. */
static int check_manifest_sha256(const TufTarget *t, const char *name, const uint8_t digest[32], UpkErr *err)
{
        char hex[65];

        if (!t || !t->has_manifest_sha256)
                return 0;
        if (!t->manifest_sha256 || strlen(t->manifest_sha256) != 64 ||
            strspn(t->manifest_sha256, "0123456789abcdefABCDEF") != 64)
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                               "target %s: custom.manifest_sha256 is not a SHA-256 (64 hex digits); the "
                               "bundle cannot be checked against it",
                               name);
        hex_encode(digest, 32, hex);
        if (strcasecmp(hex, t->manifest_sha256) != 0)
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                               "target %s: the bundle's manifest.json has sha256 %s, but the repository's "
                               "custom.manifest_sha256 says %s",
                               name, hex, t->manifest_sha256);
        return 0;
}

static int manifest_digest(const void *data, size_t size, uint8_t ret[32])
{
        unsigned len = 0;

        if (EVP_Digest(data, size, ret, &len, EVP_sha256(), NULL) != 1 || len != 32)
                return -EIO;
        return 0;
}

typedef struct MemReader {
        const uint8_t *data;
        size_t size, pos;
        bool complete; /* no more bytes will come */
        bool starved;  /* asked beyond the end while more could come */
} MemReader;

static ssize_t mem_read(void *userdata, void *buf, size_t size)
{
        MemReader *m = userdata;
        size_t n = m->size - m->pos;

        if (n == 0) {
                if (m->complete)
                        return 0;
                m->starved = true;
                return -EAGAIN;
        }
        if (n > size)
                n = size;
        memcpy(buf, m->data + m->pos, n);
        m->pos += n;
        return (ssize_t)n;
}

typedef struct HeadFetch {
        sd_event *event;
        const Config *config;
        uint8_t *buf;
        size_t size;
        uint64_t total;
        bool decided;
        int result;
        UpkErr err;
        Offer *offer;
} HeadFetch;

/* Try to open the bundle from the bytes so far: 1 decided (result in h), 0 needs more. */
static int head_try(HeadFetch *h, bool complete)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        MemReader m = { .data = h->buf, .size = h->size, .complete = complete };
        UpkErr e = {};
        int r;

        r = bundle_open_func(mem_read, &m,
                             &(BundleOpenOptions){ .keyring = h->config->keyring,
                                                   .crl = h->config->crl,
                                                   .allow_any_eku = h->config->allow_any_eku },
                             &b, &e);
        if (r < 0 && m.starved && !complete && h->size < SOURCE_HEAD_MAX)
                return 0;
        h->decided = true;
        h->result = r;
        if (r < 0) {
                h->err = e;
                return 1;
        }
        if (h->offer->target && h->offer->target->has_manifest_sha256) {
                const void *raw, *sig;
                size_t raw_size, sig_size;
                uint8_t digest[32];

                bundle_get_raw(b, &raw, &raw_size, &sig, &sig_size);
                if (manifest_digest(raw, raw_size, digest) < 0) {
                        h->result = upk_err(&h->err, UPK_ERR_IO, -EIO, "cannot compute a SHA-256");
                        return 1;
                }
                h->result = check_manifest_sha256(h->offer->target, h->offer->name, digest, &h->err);
                if (h->result < 0)
                        return 1;
        }
        offer_take_manifest(h->offer, bundle_get_manifest(b));
        return 1;
}

static int head_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        HeadFetch *h = userdata;
        size_t n = size;
        uint8_t *p;

        if (h->decided)
                return -ECANCELED;
        if (n > SOURCE_HEAD_MAX - h->size)
                n = SOURCE_HEAD_MAX - h->size;
        p = realloc(h->buf, h->size + n + 1);
        if (!p)
                return upk_err_oom(err);
        h->buf = p;
        memcpy(h->buf + h->size, buf, n);
        h->size += n;
        if (head_try(h, h->total > 0 && h->size >= h->total) > 0)
                return upk_err(err, UPK_ERR_IO, -ECANCELED, "enough bytes of the bundle were read");
        return FETCH_DATA_CONTINUE;
}

static void head_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        HeadFetch *h = userdata;

        if (!h->decided) {
                if (r >= 0)
                        (void)head_try(h, true);
                else {
                        h->decided = true;
                        h->result = r;
                        if (err)
                                h->err = *err;
                }
        }
        (void)sd_event_exit(h->event, 0);
}

/* The first bytes of a TUF target, until the bundle's signature and manifest have been read. */
static int tuf_read_head(Source *s, Offer *o, const FetchOptions *fo, UpkErr *err)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *e = NULL;
        _cleanup_(fetch_freep) Fetch *f = NULL;
        HeadFetch h = { .config = s->config, .total = o->length, .offer = o };
        int r;

        r = sd_event_new(&event);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create an event loop: %m");
        h.event = event;
        r = fetch_engine_new(event, &e, err);
        if (r < 0)
                return r;
        FetchOptions head = *fo;

        head.deadline_msec = metadata_deadline_msec(SOURCE_HEAD_MAX);
        r = fetch_new(e, o->location, o->length ?: SOURCE_URL_BUNDLE_MAX, &head, head_data, head_done, &h,
                      &f, err);
        if (r < 0)
                return r;
        r = sd_event_loop(event);
        f = fetch_free(f);
        free(h.buf);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: event loop failed: %m", o->location);
        if (h.result < 0) {
                if (err && err->kind == UPK_ERR_NONE)
                        *err = h.err;
                return upk_err_prefix(err, "the manifest of %s", o->name);
        }
        return 0;
}

/* ---- tuf ---- */

static int tuf_fetch(void *userdata, const char *url, uint64_t max_length, uint8_t **ret_data,
                     size_t *ret_size, UpkErr *err)
{
        FetchOptions fo = *(const FetchOptions *)userdata;
        char *data = NULL;
        size_t size = 0;
        UpkErr e = {};
        int r;

        fo.deadline_msec = metadata_deadline_msec(max_length);
        r = fetch_to_memory(url, max_length, &fo, &data, &size, &e);
        if (r == -ENOENT || r == -EACCES)
                return -ENOENT; /* not there (S3 and others answer 403): the end of the root rotations */
        if (r < 0) {
                if (err && err->kind == UPK_ERR_NONE)
                        *err = e;
                return r;
        }
        *ret_data = (uint8_t *)data;
        *ret_size = size;
        return 0;
}

static void metadata_fetch_options(const Source *s, FetchOptions *fo)
{
        const Config *c = s->config;

        *fo = (FetchOptions){
                .retries = METADATA_RETRIES,
                .backoff_msec = METADATA_BACKOFF_MSEC,
                .backoff_max_msec = METADATA_BACKOFF_MAX_MSEC,
                .cancel_fd = s->cancel_fd,
        };
        fetch_options_from_config(fo, c);
}

static int tuf_check(Source *s, const char *current_version, bool want_manifest, Offer **ret, UpkErr *err)
{
        _cleanup_(tuf_client_freep) TufClient *client = NULL;
        _cleanup_(tuf_target_freep) TufTarget *t = NULL;
        _cleanup_(offer_freep) Offer *o = NULL;
        FetchOptions fo;
        int r;

        metadata_fetch_options(s, &fo);
        r = mkdir_p(s->tuf_dir, 0755);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create %s: %m", s->tuf_dir);
        r = tuf_client_new(&(TufOptions){ .metadata_dir = s->tuf_dir,
                                          .metadata_url = s->metadata_url,
                                          .targets_url = s->targets_url,
                                          .bootstrap_root = s->config->source_root,
                                          .fetch = tuf_fetch,
                                          .userdata = &fo },
                           &client, err);
        if (r < 0)
                return r;
        r = tuf_refresh(client, err);
        if (r < 0)
                return r;
        r = tuf_find_offer(client, s->config->compatible, current_version, &t, err);
        if (r < 0)
                return r;
        if (!t) {
                *ret = NULL;
                return 0;
        }
        o = calloc(1, sizeof(*o));
        if (!o)
                return upk_err_oom(err);
        o->version = strdup(t->version);
        o->name = strdup(t->path);
        o->location = strdup(t->url);
        if (!o->version || !o->name || !o->location)
                return upk_err_oom(err);
        o->length = t->length;
        o->target = TAKE_PTR(t);
        if (want_manifest) {
                fo.retries = 0; /* defaults for the bundle's bytes */
                fo.backoff_msec = fo.backoff_max_msec = 0;
                r = tuf_read_head(s, o, &fo, err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- local ---- */

#endif

static int local_check(Source *s, const char *current_version, Offer **ret, UpkErr *err)
{
        const Config *c = s->config;
        _cleanup_(offer_freep) Offer *best = NULL;
        struct dirent *de;
        unsigned seen = 0;
        DIR *d;

        d = opendir(c->source_dir);
        if (!d)
                return upk_err(err, UPK_ERR_IO, -errno, "[source] dir: cannot read %s: %m", c->source_dir);
        while ((de = readdir(d)) && seen < SOURCE_LOCAL_BUNDLES_MAX) {
                _cleanup_(bundle_freep) Bundle *b = NULL;
                _cleanup_free_ char *path = NULL;
                _cleanup_close_ int fd = -EBADF;
                const Manifest *m;
                struct stat st;
                size_t n = strlen(de->d_name);
                int cmp = 1;

                if (de->d_name[0] == '.' || n < 5 || !streq(de->d_name + n - 4, ".upk"))
                        continue;
                seen++;
                path = strdup_printf("%s/%s", c->source_dir, de->d_name);
                if (!path) {
                        closedir(d);
                        return upk_err_oom(err);
                }
                /* Unsigned, broken or foreign bundles are not offered; the installer would refuse them.
                 * Nor is what is not a regular file: a FIFO would block the check for good. */
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
                    bundle_open_fd(fd,
                                   &(BundleOpenOptions){ .keyring = c->keyring,
                                                         .crl = c->crl,
                                                         .allow_any_eku = c->allow_any_eku },
                                   &b, NULL) < 0)
                        continue;
                m = bundle_get_manifest(b);
                if (!streq(m->compatible, c->compatible))
                        continue;
                if (current_version &&
                    (version_compare_strings(m->version_str, current_version, &cmp) < 0 || cmp <= 0))
                        continue;
                if (best && (version_compare_strings(m->version_str, best->version, &cmp) < 0 || cmp <= 0))
                        continue;
                offer_free(best);
                best = calloc(1, sizeof(*best));
                if (!best || !(best->version = strdup(m->version_str)) ||
                    !(best->name = strdup(de->d_name))) {
                        closedir(d);
                        return upk_err_oom(err);
                }
                best->location = TAKE_PTR(path);
                offer_take_manifest(best, m);
        }
        closedir(d);
        if (best) {
                struct stat st;
                if (stat(best->location, &st) >= 0)
                        best->length = (uint64_t)st.st_size;
        }
        *ret = TAKE_PTR(best);
        return 0;
}

int source_check(Source *s, const char *current_version, bool want_manifest, Offer **ret, UpkErr *err)
{
        eventfd_t v;

        (void)eventfd_read(s->cancel_fd, &v); /* a cancel meant for an earlier check */
        switch (s->type) {
        case SOURCE_TUF:
#if HAVE_TUF
                return tuf_check(s, current_version, want_manifest, ret, err);
#else
                return upk_err(err, UPK_ERR_CONFIG, -EOPNOTSUPP, "built without TUF support");
#endif
        case SOURCE_LOCAL:
                return local_check(s, current_version, ret, err);
        case SOURCE_HAWKBIT:
#if HAVE_HAWKBIT
                return hawkbit_check(s->hawkbit, current_version, ret, err);
#else
                break;
#endif
        case SOURCE_NONE:
        case _SOURCE_MAX:
        case _SOURCE_INVALID:
                break;
        }
        return upk_err(err, UPK_ERR_CONFIG, -EOPNOTSUPP,
                       "no update source is configured ([source] type = none)");
}

uint64_t source_next_check_usec(const Source *s)
{
#if HAVE_HAWKBIT
        if (s->hawkbit)
                return hawkbit_sleep_usec(s->hawkbit);
#endif
        return 0;
}

int source_set_consent(Source *s, const char *action, bool confirm, const char *reason)
{
#if HAVE_HAWKBIT
        if (s->hawkbit)
                return hawkbit_set_consent(s->hawkbit, action, confirm, reason);
#endif
        return -EOPNOTSUPP;
}

void source_set_auto_update(Source *s, bool enable)
{
#if HAVE_HAWKBIT
        if (s->hawkbit)
                hawkbit_set_auto_confirm(s->hawkbit, enable);
#endif
}

uint64_t source_retry_after_usec(const Source *s)
{
#if HAVE_HAWKBIT
        if (s->hawkbit)
                return hawkbit_retry_after_usec(s->hawkbit);
#endif
        return 0;
}

void source_install_started(Source *s, FetchEngine *e, const Offer *o)
{
#if HAVE_HAWKBIT
        if (s->hawkbit && o && o->action_id)
                hawkbit_install_started(s->hawkbit, e, o);
#endif
}

bool source_install_progress(Source *s, FetchEngine *e, uint64_t done, uint64_t total)
{
#if HAVE_HAWKBIT
        if (s->hawkbit)
                return hawkbit_install_progress(s->hawkbit, e, done, total);
#endif
        return false;
}

bool source_install_finished(Source *s, FetchEngine *e, bool ok, const UpkErr *err)
{
#if HAVE_HAWKBIT
        if (s->hawkbit)
                return hawkbit_install_finished(s->hawkbit, e, ok, err);
#endif
        return false;
}

/* ---- streams ---- */

#if HAVE_TUF
/* custom.manifest_sha256 checked on the bytes the installer reads, in its thread: the tar headers up to
 * manifest.json (pax headers are skipped), its bytes hashed, and the digest compared when its last byte
 * comes by, before those bytes reach the installer. */
#define TAR_BLOCK 512u

typedef enum WatchState {
        WATCH_HEADER,
        WATCH_SKIP,
        WATCH_MANIFEST,
        WATCH_DONE,
} WatchState;

typedef struct ManifestWatch {
        TufTarget expect; /* only has_manifest_sha256 and manifest_sha256 */
        char *name;       /* the target */
        WatchState state;
        uint8_t header[TAR_BLOCK];
        size_t have;
        uint64_t left; /* bytes of the member (and its padding, when skipped) still to come */
        EVP_MD_CTX *md;
} ManifestWatch;

static ManifestWatch *manifest_watch_free(ManifestWatch *w)
{
        if (!w)
                return NULL;
        free(w->expect.manifest_sha256);
        free(w->name);
        EVP_MD_CTX_free(w->md);
        free(w);
        return NULL;
}

static int tar_size(const uint8_t *field, size_t len, uint64_t *ret)
{
        uint64_t v = 0;
        size_t i = 0;

        while (i < len && field[i] == ' ')
                i++;
        for (; i < len && field[i] >= '0' && field[i] <= '7'; i++) {
                if (v > (UINT64_MAX >> 3))
                        return -ERANGE;
                v = (v << 3) | (uint64_t)(field[i] - '0');
        }
        if (i < len && field[i] != 0 && field[i] != ' ')
                return -EINVAL; /* base-256 and the like: too large for what is looked at here */
        *ret = v;
        return 0;
}

static int watch_header(ManifestWatch *w, UpkErr *err)
{
        const uint8_t *h = w->header;
        uint8_t type = h[156];
        uint64_t size;

        if (tar_size(h + 124, 12, &size) < 0)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG, "target %s: a tar header before %s is broken",
                               w->name, BUNDLE_MANIFEST_NAME);
        if (type == 'x' || type == 'g') {
                if (size > MANIFEST_SIZE_MAX)
                        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                                       "target %s: a pax header of %" PRIu64 " bytes before %s", w->name,
                                       size, BUNDLE_MANIFEST_NAME);
                w->left = (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
                w->state = w->left ? WATCH_SKIP : WATCH_HEADER;
                return 0;
        }
        if ((type != '0' && type != 0) || strnlen((const char *)h, 100) != strlen(BUNDLE_MANIFEST_NAME) ||
            memcmp(h, BUNDLE_MANIFEST_NAME, strlen(BUNDLE_MANIFEST_NAME)) != 0 || h[345] != 0)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                               "target %s: the bundle does not start with %s, so custom.manifest_sha256 "
                               "cannot be checked",
                               w->name, BUNDLE_MANIFEST_NAME);
        if (size > MANIFEST_SIZE_MAX)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                               "target %s: %s has %" PRIu64 " bytes, more than %u", w->name,
                               BUNDLE_MANIFEST_NAME, size, (unsigned)MANIFEST_SIZE_MAX);
        w->left = size;
        w->state = WATCH_MANIFEST;
        return 0;
}

static int watch_end(ManifestWatch *w, UpkErr *err)
{
        uint8_t digest[32];
        unsigned len = 0;

        w->state = WATCH_DONE;
        if (EVP_DigestFinal_ex(w->md, digest, &len) != 1 || len != sizeof(digest))
                return upk_err(err, UPK_ERR_IO, -EIO, "target %s: cannot compute a SHA-256", w->name);
        return check_manifest_sha256(&w->expect, w->name, digest, err);
}

static int watch_feed(ManifestWatch *w, const uint8_t *p, size_t n, UpkErr *err)
{
        int r;

        while (n > 0 && w->state != WATCH_DONE) {
                size_t k = 0;

                switch (w->state) {
                case WATCH_HEADER:
                        k = n < TAR_BLOCK - w->have ? n : TAR_BLOCK - w->have;
                        memcpy(w->header + w->have, p, k);
                        w->have += k;
                        if (w->have == TAR_BLOCK) {
                                w->have = 0;
                                r = watch_header(w, err);
                                if (r < 0)
                                        return r;
                                if (w->state == WATCH_MANIFEST && w->left == 0)
                                        return watch_end(w, err);
                        }
                        break;
                case WATCH_SKIP:
                        k = n < w->left ? n : (size_t)w->left;
                        w->left -= k;
                        if (w->left == 0)
                                w->state = WATCH_HEADER;
                        break;
                case WATCH_MANIFEST:
                        k = n < w->left ? n : (size_t)w->left;
                        if (EVP_DigestUpdate(w->md, p, k) != 1)
                                return upk_err(err, UPK_ERR_IO, -EIO, "target %s: cannot compute a SHA-256",
                                               w->name);
                        w->left -= k;
                        if (w->left == 0)
                                return watch_end(w, err);
                        break;
                case WATCH_DONE:
                        return 0;
                }
                p += k;
                n -= k;
        }
        return 0;
}

static int manifest_watch_new(const Offer *o, ManifestWatch **ret, UpkErr *err)
{
        ManifestWatch *w;

        w = calloc(1, sizeof(*w));
        if (!w)
                return upk_err_oom(err);
        w->expect.has_manifest_sha256 = true;
        w->name = strdup(o->name);
        w->md = EVP_MD_CTX_new();
        if (!w->name || !w->md ||
            (o->target->manifest_sha256 &&
             !(w->expect.manifest_sha256 = strdup(o->target->manifest_sha256)))) {
                manifest_watch_free(w);
                return upk_err_oom(err);
        }
        if (EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
                manifest_watch_free(w);
                return upk_err(err, UPK_ERR_IO, -EIO, "cannot set up SHA-256");
        }
        *ret = w;
        return 0;
}
#endif

struct SourceStream {
        FetchStream *fetch; /* a download, or: */
        int fd;             /* a descriptor the caller handed over (a pipe), or -EBADF */
        int cancel_fd;      /* fd: an eventfd written by source_stream_cancel() */
        atomic_bool cancelled;
        uint8_t *buf; /* fd: the bytes of the last read */
#if HAVE_TUF
        ManifestWatch *watch; /* tuf: custom.manifest_sha256 to check, or NULL */
#endif
        TufHasher *hasher;    /* tuf: NULL for a plain URL; used by the stream's check thread */
        EVP_MD_CTX *sha256;   /* hawkbit: the artifact's SHA-256 as it streams, when the server names one */
        char *expect_sha256;  /* its lower-case hex */
        uint64_t expect_size; /* 0: not named */
        uint64_t seen;
        char *name; /* for messages */
        /* worker side */
        bool failed;
        UpkErr err;
};

SourceStream *source_stream_free(SourceStream *s)
{
        if (!s)
                return NULL;
        fetch_stream_free(s->fetch); /* first: the check uses the hasher */
#if HAVE_TUF
        tuf_hasher_free(s->hasher);
        manifest_watch_free(s->watch);
#endif
        safe_close(s->fd);
        safe_close(s->cancel_fd);
        EVP_MD_CTX_free(s->sha256);
        free(s->expect_sha256);
        free(s->buf);
        free(s->name);
        free(s);
        return NULL;
}

void source_bundle_fetch_options(const Config *c, FetchOptions *fo)
{
        *fo = (FetchOptions){};
        fetch_options_from_config(fo, c);
        fo->min_rate = limit("UPKEEP_TEST_BUNDLE_MIN_RATE", SOURCE_BUNDLE_MIN_RATE);
        fo->min_rate_grace_sec = limit("UPKEEP_TEST_BUNDLE_GRACE_SEC", SOURCE_BUNDLE_GRACE_SEC);
        fo->low_speed_time_sec = limit("UPKEEP_TEST_BUNDLE_STALL_SEC", FETCH_LOW_SPEED_TIME_DEFAULT);
}

static SourceStream *stream_alloc(const char *name)
{
        SourceStream *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->fd = s->cancel_fd = -EBADF;
        s->name = strdup(name);
        if (!s->name)
                return source_stream_free(s);
        return s;
}

static int stream_open_headers(FetchEngine *e, const Config *c, const char *url, uint64_t max,
                               const char *name, const char *const *headers, SourceStream **ret, UpkErr *err)
{
        _cleanup_(source_stream_freep) SourceStream *s = NULL;
        FetchOptions fo = {};
        int r;

        source_bundle_fetch_options(c, &fo);
        fo.headers = headers;
        s = stream_alloc(name);
        if (!s)
                return upk_err_oom(err);
        r = fetch_stream_new(e, url, max, &fo, 0, &s->fetch, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

static int stream_open(FetchEngine *e, const Config *c, const char *url, uint64_t max, const char *name,
                       SourceStream **ret, UpkErr *err)
{
        return stream_open_headers(e, c, url, max, name, NULL, ret, err);
}

#if HAVE_HAWKBIT
/* The stream's check thread: a hawkBit artifact's size and sha256 (a second check beside the bundle's
 * own signature), checked at the end before the installer sees it. */
static int check_artifact(const void *data, size_t size, void *userdata, UpkErr *err)
{
        SourceStream *s = userdata;
        uint8_t digest[32];
        unsigned len = 0;
        char hex[65];

        if (data) {
                s->seen += size;
                if (s->sha256 && EVP_DigestUpdate(s->sha256, data, size) != 1)
                        return upk_err(err, UPK_ERR_IO, -EIO, "%s: cannot compute a SHA-256", s->name);
                return 0;
        }
        if (s->expect_size && s->seen != s->expect_size)
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                               "%s: %" PRIu64 " bytes, but the hawkBit server announced %" PRIu64, s->name,
                               s->seen, s->expect_size);
        if (!s->sha256)
                return 0;
        if (EVP_DigestFinal_ex(s->sha256, digest, &len) != 1 || len != sizeof(digest))
                return upk_err(err, UPK_ERR_IO, -EIO, "%s: cannot compute a SHA-256", s->name);
        hex_encode(digest, sizeof(digest), hex);
        if (!streq(hex, s->expect_sha256))
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                               "%s: its sha256 is %s, but the hawkBit server announced %s", s->name, hex,
                               s->expect_sha256);
        return 0;
}

int source_stream_open_action(FetchEngine *e, Source *src, const Offer *o, SourceStream **ret, UpkErr *err)
{
        _cleanup_(source_stream_freep) SourceStream *s = NULL;
        char **headers = NULL;
        int r;

        if (!src->hawkbit || !o->action_id)
                return upk_err(err, UPK_ERR_IO, -EINVAL, "%s: not a hawkBit deployment", o->name);
        r = hawkbit_download_headers(src->hawkbit, &headers, err);
        if (r < 0)
                return r;
        r = stream_open_headers(e, src->config, o->location, o->length ?: SOURCE_URL_BUNDLE_MAX, o->name,
                                (const char *const *)headers, &s, err);
        strv_free_erase(headers);
        if (r < 0)
                return r;
        s->expect_size = o->length;
        if (o->sha256) {
                s->expect_sha256 = strdup(o->sha256);
                s->sha256 = EVP_MD_CTX_new();
                if (!s->expect_sha256 || !s->sha256)
                        return upk_err_oom(err);
                if (EVP_DigestInit_ex(s->sha256, EVP_sha256(), NULL) != 1)
                        return upk_err(err, UPK_ERR_IO, -EIO, "cannot set up SHA-256");
        }
        r = fetch_stream_set_check(s->fetch, check_artifact, s, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int source_action_headers(Source *src, const Offer *o, char ***ret, UpkErr *err)
{
        if (!src->hawkbit || !o->action_id)
                return upk_err(err, UPK_ERR_IO, -EINVAL, "%s: not a hawkBit deployment", o->name);
        return hawkbit_download_headers(src->hawkbit, ret, err);
}
#else
int source_stream_open_action(FetchEngine *e, Source *src, const Offer *o, SourceStream **ret, UpkErr *err)
{
        return upk_err(err, UPK_ERR_CONFIG, -EOPNOTSUPP, "built without hawkBit support");
}

int source_action_headers(Source *src, const Offer *o, char ***ret, UpkErr *err)
{
        return upk_err(err, UPK_ERR_CONFIG, -EOPNOTSUPP, "built without hawkBit support");
}
#endif

#if HAVE_TUF
/* The stream's check thread: the target's length and hashes, computed as the bytes arrive (beside the
 * installer's payload hashing, on the other core), checked at the end before the installer sees it. */
static int check_target(const void *data, size_t size, void *userdata, UpkErr *err)
{
        SourceStream *s = userdata;

        if (data)
                return tuf_hasher_update(s->hasher, data, size, err);
        return tuf_hasher_finish(s->hasher, err); /* the message names the target */
}
#endif

int source_stream_open_offer(FetchEngine *e, const Config *c, const Offer *o, SourceStream **ret,
                             UpkErr *err)
{
        _cleanup_(source_stream_freep) SourceStream *s = NULL;
        int r;

        if (!o->target)
                return upk_err(err, UPK_ERR_IO, -EINVAL, "%s: not a download", o->name);
        r = stream_open(e, c, o->location, o->length ?: 1, o->name, &s, err);
        if (r < 0)
                return r;
#if HAVE_TUF
        r = tuf_hasher_new(o->target, &s->hasher, err);
        if (r < 0)
                return r;
        r = fetch_stream_set_check(s->fetch, check_target, s, err);
        if (r < 0)
                return r;
        if (o->target->has_manifest_sha256) {
                r = manifest_watch_new(o, &s->watch, err);
                if (r < 0)
                        return r;
        }
#endif
        *ret = TAKE_PTR(s);
        return 0;
}

int source_stream_open_url(FetchEngine *e, const Config *c, const char *url, SourceStream **ret, UpkErr *err)
{
        return stream_open(e, c, url, SOURCE_URL_BUNDLE_MAX, url, ret, err);
}

int source_stream_open_fd(int fd, const char *name, SourceStream **ret, UpkErr *err)
{
        _cleanup_(source_stream_freep) SourceStream *s = NULL;
        _cleanup_close_ int owned = fd;

        s = stream_alloc(name);
        if (!s || !(s->buf = malloc(SOURCE_FD_READ_MAX)))
                return upk_err_oom(err);
        s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->cancel_fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot create an eventfd: %m");
        s->fd = TAKE_FD(owned);
        *ret = TAKE_PTR(s);
        return 0;
}

/* The next bytes of the descriptor. A pipe may stall for good: the read waits in poll() beside the
 * cancel eventfd, so that Cancel and SIGTERM end it at once. */
static ssize_t fd_stream_next(SourceStream *s, const void **ret_buf)
{
        for (;;) {
                struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
                                       { .fd = s->cancel_fd, .events = POLLIN } };
                ssize_t k;

                if (atomic_load(&s->cancelled))
                        return upk_err(&s->err, UPK_ERR_IO, -ECANCELED, "%s: cancelled", s->name);
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return upk_err(&s->err, UPK_ERR_IO, -errno, "%s: cannot wait for bytes: %m",
                                       s->name);
                }
                if (p[1].revents)
                        continue; /* the flag above says why */
                if (!p[0].revents)
                        continue;
                k = read(s->fd, s->buf, SOURCE_FD_READ_MAX);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k < 0)
                        return upk_err(&s->err, UPK_ERR_IO, -errno, "%s: read error: %m", s->name);
                *ret_buf = s->buf;
                return k;
        }
}

ssize_t source_stream_next(void *userdata, const void **ret_buf)
{
        SourceStream *s = userdata;
        ssize_t n;

        if (s->failed)
                return s->err.code ?: -EIO;
        if (!s->fetch) {
                n = fd_stream_next(s, ret_buf);
                if (n < 0)
                        s->failed = true;
                return n;
        }
        n = fetch_stream_next(s->fetch, ret_buf);
#if HAVE_TUF
        if (n > 0 && s->watch && watch_feed(s->watch, *ret_buf, (size_t)n, &s->err) < 0) {
                /* These bytes complete a manifest that is not the one the repository signed: they do not
                 * reach the installer. */
                s->failed = true;
                fetch_stream_cancel(s->fetch);
                return s->err.code;
        }
#endif
        if (n < 0) {
                fetch_stream_get_error(s->fetch, &s->err);
                if (s->err.kind == UPK_ERR_NONE)
                        (void)upk_err(&s->err, UPK_ERR_NETWORK, (int)n, "%s: download failed: %m", s->name);
                s->failed = true;
                if (s->err.code == 0)
                        s->err.code = (int)n;
                fetch_stream_cancel(s->fetch);
        }
        return n;
}

void source_stream_get_error(SourceStream *s, UpkErr *ret)
{
        if (s->failed && s->err.kind != UPK_ERR_NONE)
                *ret = s->err;
        else
                *ret = (UpkErr){};
}

bool source_stream_transferring(SourceStream *s)
{
        return s->fetch && !fetch_stream_is_finished(s->fetch);
}

void source_stream_cancel(SourceStream *s)
{
        if (!s->fetch) {
                atomic_store(&s->cancelled, true);
                (void)eventfd_write(s->cancel_fd, 1);
                return;
        }
        fetch_stream_cancel(s->fetch);
}
