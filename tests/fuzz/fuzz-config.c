/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the configuration parser (libinih through our line reader and validation). */
#include "conf.h"
#include "fuzz-util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(config_freep) Config *c = NULL;
        UpkErr err = {};

        if (size > CONFIG_FILE_SIZE_MAX + 1)
                return 0;
        if (config_load(fuzz_file("upkeep.conf", data, size), &c, &err) < 0) {
                if (err.kind == UPK_ERR_NONE || !err.msg[0])
                        abort(); /* every failure says why */
                return 0;
        }
        /* a loaded configuration is complete */
        if (!c->compatible || !c->data_dir || !c->boot_state_file)
                abort();
        for (size_t i = 0; i < c->n_slots; i++)
                if (!c->slots[i].device || !c->slots[i].bootname ||
                    !config_find_slot(c, c->slots[i].class, streq(c->slots[i].name, "A") ? "B" : "A"))
                        abort();
        return 0;
}
