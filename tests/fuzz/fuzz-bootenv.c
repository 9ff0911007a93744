/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the file boot backend's environment parser and its bootloader simulation. */
#include "boot.h"
#include "fuzz-util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char *const slots[] = { (char *)"A", (char *)"B" };
        _cleanup_(boot_backend_freep) BootBackend *b = NULL;
        _cleanup_free_ char *primary = NULL, *booted = NULL;
        Config c = { .boot_backend = BOOT_BACKEND_FILE, .boot_attempts = 3 };
        SlotState st;
        UpkErr err = {};

        if (size > 128 * 1024)
                return 0;
        c.boot_state_file = (char *)fuzz_file("bootenv", data, size);
        if (boot_backend_new(&c, slots, 2, &b, &err) < 0)
                abort(); /* creating the backend does not read the file */
        if (boot_get_primary(b, &primary, &err) < 0 && !err.msg[0])
                abort();
        upk_err_clear(&err);
        if (boot_get_state(b, "B", &st, &err) < 0 && !err.msg[0])
                abort();
        upk_err_clear(&err);
        /* an update on whatever was there, then a boot: either works or says why */
        if (boot_mark_bad(b, "B", &err) >= 0 && boot_set_try(b, "B", &err) >= 0) {
                if (boot_file_simulate_boot(c.boot_state_file, &booted, &err) < 0 || !streq(booted, "B"))
                        abort(); /* B was just set to try: the next boot takes it */
        } else if (!err.msg[0])
                abort();
        return 0;
}
