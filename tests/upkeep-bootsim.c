/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* upkeep-bootsim STATE_FILE: play the bootloader once on a file-backend state file ("reboot" for the
 * demo and the integration tests) and print the slot it booted. */
#include <stdio.h>

#include "boot.h"

int main(int argc, char *argv[])
{
        _cleanup_free_ char *booted = NULL;
        UpkErr e = {};
        int r;

        if (argc != 2 || argv[1][0] == '-') {
                fprintf(stderr, "usage: upkeep-bootsim STATE_FILE\n");
                return 2;
        }
        r = boot_file_simulate_boot(argv[1], &booted, &e);
        if (r < 0) {
                fprintf(stderr, "upkeep-bootsim: %s\n", e.msg[0] ? e.msg : strerror(-r));
                return 1;
        }
        printf("%s\n", booted);
        return 0;
}
