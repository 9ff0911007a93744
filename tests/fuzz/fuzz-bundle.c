/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the bundle reader: the input is a whole bundle. It is read twice: verified against the test
 * keyring (tests/fuzz/keyring.pem, which signed the seed corpus), from a source that copies, and
 * unverified, so that the manifest and payload paths behind the signature are reached by mutated
 * inputs too, from a source that lends its bytes in place. Each lent piece is a fresh allocation freed
 * when the next is asked for, so that a reader still using a given-back piece is caught by ASan. */
#include "bundle.h"
#include "fuzz.h"

typedef struct Source {
        const uint8_t *data;
        size_t size, pos;
        uint8_t *lent;
} Source;

static ssize_t source_read(void *userdata, void *buf, size_t size)
{
        Source *s = userdata;
        /* Hand out small, uneven pieces to exercise the reader's buffering. */
        size_t n = s->size - s->pos;
        if (n > size)
                n = size;
        if (n > 7777)
                n = 7777;
        memcpy(buf, s->data + s->pos, n);
        s->pos += n;
        return (ssize_t)n;
}

static ssize_t source_next(void *userdata, const void **ret_buf)
{
        Source *s = userdata;
        /* Uneven pieces again, of other sizes: from 1 byte to about 9 KiB. */
        size_t n = s->size - s->pos, want = 1 + (s->pos * 2654435761u >> 7) % 9000;

        free(s->lent);
        s->lent = NULL;
        if (n > want)
                n = want;
        if (n == 0)
                return 0;
        s->lent = malloc(n);
        if (!s->lent)
                abort();
        memcpy(s->lent, s->data + s->pos, n);
        s->pos += n;
        *ret_buf = s->lent;
        return (ssize_t)n;
}

static void read_bundle(const uint8_t *data, size_t size, const char *keyring, bool in_place)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions opts = { .keyring = keyring };
        Source src = { .data = data, .size = size };
        UpkErr err = {};
        int r;

        if (in_place)
                r = bundle_open_next(source_next, &src, &opts, &b, &err);
        else
                r = bundle_open_func(source_read, &src, &opts, &b, &err);
        if (r >= 0) {
                upk_err_clear(&err);
                bundle_set_deferred_hashing(b, in_place);
                r = bundle_verify_rest(b, &err);
        }
        if (r < 0 && (err.kind == UPK_ERR_NONE || !err.msg[0]))
                abort(); /* every failure must say why */
        b = bundle_free(b);
        free(src.lent);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *keyring = getenv("UPKEEP_FUZZ_KEYRING");

        if (size > 4 * 1024 * 1024)
                return 0;
        read_bundle(data, size, keyring ?: FUZZ_KEYRING, false);
        read_bundle(data, size, NULL, true);
        return 0;
}
