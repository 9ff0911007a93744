/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* See abi-time.h. The only file built with the system's own time_t rather than upkeep's 64-bit one. */
#if UPK_SYSTEM_TIME_BITS == 32
#undef _TIME_BITS
#endif

#include "abi-time.h"

#include <archive_entry.h>
#include <errno.h>
#include <time.h>

_Static_assert(sizeof(time_t) * 8 == UPK_SYSTEM_TIME_BITS, "abi-time.c must see the system's time_t");

int upk_archive_entry_set_mtime(struct archive_entry *e, int64_t sec)
{
        if ((int64_t)(time_t)sec != sec)
                return -ERANGE;
        archive_entry_set_mtime(e, (time_t)sec, 0);
        return 0;
}
