/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the reader of `updatectl repo`'s DIR/repo.json (each role's expiry period): every failure says
 * why and leaves the periods alone; what it accepts is in range and reads back the same after the
 * writer's canonical form. */
#include "fuzz.h"
#include "tuf-repo.h"

#define PERIOD_MAX (UINT64_C(100) * 365 * 86400)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint64_t period[_TUF_ROLE_TYPE_MAX] = { 7, 7, 7, 7 }, again[_TUF_ROLE_TYPE_MAX] = {};
        _cleanup_free_ char *bytes = NULL;
        size_t n = 0;
        UpkErr err = {};

        if (tuf_repo_conf_parse(data, size, "repo.json", period, &err) < 0) {
                if (!err.msg[0])
                        abort(); /* every failure says why */
                for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                        if (period[t] != 7)
                                abort();
                return 0;
        }
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                if (period[t] < 1 || period[t] > PERIOD_MAX)
                        abort();
        if (tuf_repo_conf_format(period, &bytes, &n) < 0)
                return 0; /* out of memory */
        if (tuf_repo_conf_parse(bytes, n, "repo.json", again, &err) < 0 ||
            memcmp(period, again, sizeof(period)) != 0)
                abort();
        return 0;
}
