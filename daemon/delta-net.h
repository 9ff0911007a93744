/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A delta's downloads (install_bundle_delta(), upkeep-bundle(5) Deltas): the byte ranges of the bundle at
 * a URL, each read a blocking request with a short-lived loop of its own, from the thread that installs
 * (the job's worker in the service, the main thread of the offline verb). Counts the requests and the
 * bytes on the wire for the summary line both print. */

#include "conf.h"
#include "fetch.h"
#include "install.h"

typedef struct DeltaNet {
        const char *url; /* borrowed: must outlive the install */
        FetchOptions fo; /* the caller may add headers (borrowed, like url) */
        /* The size the update server announced for the file (a hawkBit artifact's), 0: none. A first
         * answer of another total fails the delta with -ESTALE (UPK_ERR_NETWORK: the caller falls back to
         * the whole download), naming `name` (borrowed; NULL: the URL). */
        uint64_t expect_total;
        const char *name;
        uint64_t total;            /* the file's size, from the first answer */
        char etag[FETCH_ETAG_MAX]; /* and its ETag: a later answer with another one is refused */
        unsigned requests;
        uint64_t wire_bytes;
} DeltaNet;

/* `n` and `io` for a delta from `url` with the bundle download options of `c`
 * (source_bundle_fetch_options()); `cancel_fd` (an eventfd; negative: none) ends a running request once
 * readable. `io->manifest_sha256` is left NULL. */
void delta_net_init(DeltaNet *n, const Config *c, const char *url, int cancel_fd, InstallDeltaIo *io);

/* "delta: L of P bytes of the payloads taken from slot S, W bytes downloaded in N requests (X% of the
 * bundle's F bytes); block table cached" ("computed" when the install had to hash a booted slot): a new
 * string, NULL when out of memory. Blocks from the slots of several classes: "taken from slots rootfs.A,
 * appfs.B, ...", each slot by its class and name. */
char *delta_net_summary(const InstallDeltaStats *st, unsigned requests, uint64_t wire_bytes);
