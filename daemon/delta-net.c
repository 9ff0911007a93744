/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "delta-net.h"

#include "fetch-ranges.h"
#include "source.h"

static void delta_net_count(DeltaNet *n, const FetchRangesStats *st)
{
        n->requests += st->requests;
        n->wire_bytes += st->wire_bytes;
}

static int delta_read_range(void *userdata, uint64_t offset, size_t size, void *buf, uint64_t *ret_total,
                            UpkErr *err)
{
        DeltaNet *n = userdata;
        _cleanup_free_ void *data = NULL;
        char etag[FETCH_ETAG_MAX] = "";
        FetchRangesStats st = {};
        uint64_t total = 0, length = size;
        int r;

        /* The first request (the head) may run past the end of a small bundle. */
        r = fetch_range_to_memory(n->url, offset, size, &n->fo, &data, ret_total ? &length : NULL, &total,
                                  etag, &st, err);
        delta_net_count(n, &st);
        if (r < 0)
                return r;
        if (n->total == 0) {
                if (n->expect_total && total != n->expect_total)
                        return upk_err(err, UPK_ERR_NETWORK, -ESTALE,
                                       "%s: the file at %s has %" PRIu64
                                       " bytes, but the update server announced %" PRIu64,
                                       n->name ?: n->url, n->url, total, n->expect_total);
                n->total = total;
                memcpy(n->etag, etag, sizeof(etag));
        } else if (total != n->total || !streq(etag, n->etag))
                return upk_err(err, UPK_ERR_NETWORK, -ESTALE, "%s: the file changed on the server", n->url);
        memcpy(buf, data, length);
        if (ret_total)
                *ret_total = total;
        return 0;
}

static int delta_read_ranges(void *userdata, const DeltaRange *ranges, size_t k, void *buf, size_t size,
                             UpkErr *err)
{
        DeltaNet *n = userdata;
        _cleanup_free_ FetchRange *fr = calloc(k ?: 1, sizeof(*fr));
        FetchRangesStats st = {};
        int r;

        if (!fr)
                return upk_err_oom(err);
        for (size_t i = 0; i < k; i++)
                fr[i] = (FetchRange){ ranges[i].start, ranges[i].end - ranges[i].start };
        r = fetch_ranges_to_memory(n->url, n->total, n->etag, fr, k, &n->fo, buf, size, &st, err);
        delta_net_count(n, &st);
        return r;
}

void delta_net_init(DeltaNet *n, const Config *c, const char *url, int cancel_fd, InstallDeltaIo *io)
{
        *n = (DeltaNet){ .url = url };
        source_bundle_fetch_options(c, &n->fo);
        n->fo.cancel_fd = cancel_fd;
        *io = (InstallDeltaIo){ .read_range = delta_read_range,
                                .read_ranges = delta_read_ranges,
                                .userdata = n };
}

char *delta_net_summary(const InstallDeltaStats *st, unsigned requests, uint64_t wire_bytes)
{
        return strdup_printf("delta: %" PRIu64 " of %" PRIu64
                             " bytes of the payloads taken from slot%s %s, %" PRIu64
                             " bytes downloaded in %u requests (%.1f%% of the bundle's %" PRIu64
                             " bytes); block table %s",
                             st->local_bytes, st->payload_bytes, st->n_slots > 1 ? "s" : "",
                             st->n_slots > 1 ? st->slots : st->slot, wire_bytes, requests,
                             st->file_size ? 100.0 * (double)wire_bytes / (double)st->file_size : 0.0,
                             st->file_size, st->tables_computed > 0 ? "computed" : "cached");
}
