/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The input is a saved block table (block-table.h), read back for a slot of 1 MiB in blocks of 4 KiB
 * with the origin of 32 bytes of 0x5a (what the seeds were made for; a fuzzer that fixes the checksum
 * reaches the rules after it). Whatever parses must be sorted, within the slot, and serialise to the same
 * bytes; a refusal is a format error naming the block table. */
#include "block-table.h"
#include "fuzz.h"

#define SLOT (1024u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        uint8_t origin[BLOCK_TABLE_ORIGIN_SIZE];
        UpkErr err = {};
        size_t n;
        int r;

        memset(origin, 0x5a, sizeof(origin));
        r = block_table_parse(data, size, SLOT, 4096, origin, &t, &err);
        if (r < 0) {
                if (r != -ENOMEM && ((r != -EBADMSG && r != -ESTALE) || err.kind != UPK_ERR_FORMAT ||
                                     !strneq(err.msg, "block table: ", 13)))
                        abort();
                return 0;
        }
        if (block_table_size(t) > SLOT / 4096)
                abort();
        if (block_table_serialise(t, SLOT, origin, &out, &n, NULL) < 0)
                return 0;
        if (n != size || memcmp(out, data, n) != 0)
                abort();
        return 0;
}
