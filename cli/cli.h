/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "error.h"

/* Exit status, documented in updatectl(1). */
enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,
        EXIT_USAGE = 2,
        EXIT_REJECT_SIGNATURE = 10,
        EXIT_REJECT_COMPATIBLE = 11,
        EXIT_REJECT_DOWNGRADE = 12,
        EXIT_REJECT_MANIFEST = 13,
        EXIT_REJECT_FORMAT = 14,
        EXIT_REJECT_PAYLOAD = 15,
};

extern const char *program_name;

/* Print "NAME: what: message" for an UpkErr and return the exit status for its kind. */
int cli_report(const char *what, const UpkErr *e);
/* Print "NAME: message" for a usage error and return EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) _printf_(1, 2);

int bundle_main(int argc, char *argv[]);
