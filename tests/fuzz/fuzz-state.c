/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the state and history readers: whatever is on disk, loading never fails for it (it falls back
 * to defaults), and what loads can be written and read back. */
#include "fuzz-util.h"
#include "fuzz.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(state_freep) UpkState *s = NULL, *again = NULL;
        _cleanup_free_ char *warning = NULL, *warning2 = NULL;
        HistoryEntry *h = NULL;
        size_t n = 0;
        int r;

        if (size > STATE_FILE_SIZE_MAX + 1)
                return 0;
        (void)fuzz_file("state.json", data, size);
        r = state_load(fuzz_dir(), &s, &warning);
        if (r < 0 && r != -ENOMEM)
                abort();
        if (r >= 0) {
                if (state_save(fuzz_dir(), s, NULL) < 0)
                        abort();
                if (state_load(fuzz_dir(), &again, &warning2) != 0)
                        abort(); /* what we wrote must read back cleanly */
        }

        (void)fuzz_file("history.json", data, size);
        r = history_load(fuzz_dir(), &h, &n, NULL);
        if (r < 0 && r != -ENOMEM)
                abort();
        if (n > HISTORY_MAX)
                abort();
        history_free(h, n);
        return 0;
}
