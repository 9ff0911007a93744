/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "error.h"

/* Exit status: UPK_EXIT_* from error.h, documented in updatectl(1). */
#define EXIT_OK    UPK_EXIT_OK
#define EXIT_FAIL  UPK_EXIT_FAIL
#define EXIT_USAGE UPK_EXIT_USAGE

extern const char *program_name;

/* Print "NAME: what: message" for an UpkErr and return the exit status for its kind. */
int cli_report(const char *what, const UpkErr *e);
/* Print "NAME: message" for a usage error and return EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) _printf_(1, 2);

int bundle_main(int argc, char *argv[]);
