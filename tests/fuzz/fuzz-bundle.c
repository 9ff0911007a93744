/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the bundle reader: the input is a whole bundle. It is read twice: verified against the test
 * keyring (tests/fuzz/keyring.pem, which signed the seed corpus), and unverified, so that the
 * manifest and payload paths behind the signature are reached by mutated inputs too. */
#include "bundle.h"
#include "fuzz.h"

typedef struct Source {
        const uint8_t *data;
        size_t size, pos;
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

static void read_bundle(const uint8_t *data, size_t size, const char *keyring)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions opts = { .keyring = keyring };
        Source src = { .data = data, .size = size };
        UpkErr err = {};

        if (bundle_open_func(source_read, &src, &opts, &b, &err) < 0) {
                if (err.kind == UPK_ERR_NONE || !err.msg[0])
                        abort(); /* every failure must say why */
                return;
        }
        upk_err_clear(&err);
        if (bundle_verify_rest(b, &err) < 0 && (err.kind == UPK_ERR_NONE || !err.msg[0]))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *keyring = getenv("UPKEEP_FUZZ_KEYRING");

        if (size > 4 * 1024 * 1024)
                return 0;
        read_bundle(data, size, keyring ?: FUZZ_KEYRING);
        read_bundle(data, size, NULL);
        return 0;
}
