/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A client for the tuf-conformance suite (its CLIENT-CLI.md protocol), built on lib/tuf.c with a libcurl
 * fetcher. Not installed.
 *
 *   upkeep-tuf-client --metadata-dir DIR init TRUSTED_ROOT
 *   upkeep-tuf-client --metadata-dir DIR --metadata-url URL refresh
 *   upkeep-tuf-client --metadata-dir DIR --metadata-url URL --target-name PATH --target-base-url URL
 *                     --target-dir DIR download
 * Extension (for upkeep's own tests):
 *   upkeep-tuf-client --metadata-dir DIR --metadata-url URL --compatible C [--installed-version V] offer
 *     prints "PATH VERSION" of the offered target, or "none"; exit 0.
 * Exit status: 0 success, 1 failure (the error on stderr, as "KIND: message"), 2 usage. */

#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

#include "error.h"
#include "fileio.h"
#include "tuf.h"

typedef struct Buf {
        uint8_t *data;
        size_t size;
        uint64_t max;
        bool too_big;
} Buf;

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
        Buf *b = userdata;
        size_t len = size * n;
        uint8_t *d;

        if (len > b->max - b->size) {
                b->too_big = true;
                return 0; /* aborts the transfer */
        }
        d = realloc(b->data, b->size + len + 1);
        if (!d)
                return 0;
        b->data = d;
        memcpy(b->data + b->size, p, len);
        b->size += len;
        return len;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup);

static int fetch(void *userdata, const char *url, uint64_t max_length, uint8_t **ret_data, size_t *ret_size,
                 UpkErr *err)
{
        _cleanup_(curl_easy_cleanupp) CURL *curl = curl_easy_init();
        Buf b = { .max = max_length };
        long status = 0;
        CURLcode cc;

        (void)userdata;
        if (!curl)
                return -ENOMEM;
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "upkeep-tuf-client/" PACKAGE_VERSION);
        if (max_length < (uint64_t)INT64_MAX)
                curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_length);
        cc = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 404 || status == 403) {
                free(b.data);
                return -ENOENT;
        }
        if (b.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
                free(b.data);
                return upk_err(err, UPK_ERR_IO, -EFBIG, "%s: more than %" PRIu64 " bytes", url, max_length);
        }
        if (cc != CURLE_OK) {
                free(b.data);
                return upk_err(err, UPK_ERR_IO, -EIO, "%s: %s", url, curl_easy_strerror(cc));
        }
        if (status != 200) {
                free(b.data);
                return upk_err(err, UPK_ERR_IO, -EIO, "%s: HTTP status %ld", url, status);
        }
        if (!b.data) {
                b.data = malloc(1);
                if (!b.data)
                        return -ENOMEM;
        }
        *ret_data = b.data;
        *ret_size = b.size;
        return 0;
}

static int fail(const UpkErr *e, int r)
{
        if (e->kind != UPK_ERR_NONE)
                fprintf(stderr, "%s: %s\n", upk_err_kind_to_string(e->kind), e->msg);
        else
                fprintf(stderr, "error: %s\n", strerror(-r));
        return 1;
}

static int cmd_init(const char *dir, const char *root)
{
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(root, TUF_ROOT_MAX_LENGTH, &data, &size);
        if (r >= 0)
                r = mkdir_p(dir, 0755);
        if (r >= 0)
                r = write_file_atomic(dir, "root.json", data, size, 0644);
        if (r < 0) {
                fprintf(stderr, "init: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}

/* The local copy, when it has the target's length and hashes: nothing to download. */
static bool cached(const TufTarget *t, const char *path)
{
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        if (read_full_file(path, t->length + 1 > SIZE_MAX ? SIZE_MAX : (size_t)t->length + 1, &data, &size) <
            0)
                return false;
        return tuf_target_verify(t, data, size, NULL) >= 0;
}

static int cmd_download(TufClient *c, const char *name, const char *target_dir)
{
        _cleanup_(tuf_target_freep) TufTarget *t = NULL;
        _cleanup_free_ char *q = NULL, *path = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        UpkErr e = {};
        size_t size = 0;
        int r;

        r = tuf_refresh(c, &e);
        if (r < 0)
                return fail(&e, r);
        r = tuf_get_target_info(c, name, &t, &e);
        if (r < 0)
                return fail(&e, r);
        if (!t) {
                fprintf(stderr, "download: no target %s in the repository\n", name);
                return 1;
        }
        q = tuf_quote(t->path);
        if (!q)
                return fail(&e, -ENOMEM);
        path = strdup_printf("%s/%s", target_dir, q);
        if (!path)
                return fail(&e, -ENOMEM);
        if (cached(t, path))
                return 0;
        r = fetch(NULL, t->url, t->length, &data, &size, &e);
        if (r < 0)
                return fail(&e, r);
        r = tuf_target_verify(t, data, size, &e);
        if (r < 0)
                return fail(&e, r);
        r = write_file_atomic(target_dir, q, data, size, 0644);
        if (r < 0) {
                fprintf(stderr, "download: cannot write %s: %s\n", path, strerror(-r));
                return 1;
        }
        return 0;
}

static int cmd_offer(TufClient *c, const char *compatible, const char *installed)
{
        _cleanup_(tuf_target_freep) TufTarget *t = NULL;
        UpkErr e = {};
        int r;

        r = tuf_refresh(c, &e);
        if (r < 0)
                return fail(&e, r);
        r = tuf_find_offer(c, compatible, installed, &t, &e);
        if (r < 0)
                return fail(&e, r);
        if (t)
                printf("%s %s\n", t->path, t->version);
        else
                printf("none\n");
        return 0;
}

static int usage(void)
{
        fprintf(stderr,
                "usage: upkeep-tuf-client --metadata-dir DIR [--metadata-url URL] [--target-name PATH]\n"
                "       [--target-base-url URL] [--target-dir DIR] [--compatible C]\n"
                "       [--installed-version V] init ROOT | refresh | download | offer\n");
        return 2;
}

int main(int argc, char **argv)
{
        enum { ARG_MD = 0x100, ARG_MU, ARG_TN, ARG_TU, ARG_TD, ARG_COMPAT, ARG_INST };
        static const struct option options[] = {
                { "metadata-dir", required_argument, NULL, ARG_MD },
                { "metadata-url", required_argument, NULL, ARG_MU },
                { "target-name", required_argument, NULL, ARG_TN },
                { "target-base-url", required_argument, NULL, ARG_TU },
                { "target-dir", required_argument, NULL, ARG_TD },
                { "compatible", required_argument, NULL, ARG_COMPAT },
                { "installed-version", required_argument, NULL, ARG_INST },
                { "verbose", no_argument, NULL, 'v' },
                {},
        };
        const char *md = NULL, *mu = NULL, *tn = NULL, *tu = NULL, *td = NULL, *compat = NULL, *inst = NULL,
                   *cmd;
        _cleanup_(tuf_client_freep) TufClient *c = NULL;
        UpkErr e = {};
        int opt, r;

        while ((opt = getopt_long(argc, argv, "v", options, NULL)) >= 0)
                switch (opt) {
                case ARG_MD:
                        md = optarg;
                        break;
                case ARG_MU:
                        mu = optarg;
                        break;
                case ARG_TN:
                        tn = optarg;
                        break;
                case ARG_TU:
                        tu = optarg;
                        break;
                case ARG_TD:
                        td = optarg;
                        break;
                case ARG_COMPAT:
                        compat = optarg;
                        break;
                case ARG_INST:
                        inst = optarg;
                        break;
                case 'v':
                        break;
                default:
                        return usage();
                }
        if (optind >= argc || !md)
                return usage();
        cmd = argv[optind++];
        if (streq(cmd, "init")) {
                if (optind + 1 != argc)
                        return usage();
                return cmd_init(md, argv[optind]);
        }
        if (optind != argc || !mu)
                return usage();

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return 1;
        r = tuf_client_new(
                &(TufOptions){ .metadata_dir = md, .metadata_url = mu, .targets_url = tu, .fetch = fetch },
                &c, &e);
        if (r < 0)
                return fail(&e, r);
        if (streq(cmd, "refresh")) {
                r = tuf_refresh(c, &e);
                return r < 0 ? fail(&e, r) : 0;
        }
        if (streq(cmd, "download")) {
                if (!tn || !tu || !td)
                        return usage();
                return cmd_download(c, tn, td);
        }
        if (streq(cmd, "offer")) {
                if (!compat)
                        return usage();
                return cmd_offer(c, compat, inst);
        }
        return usage();
}
