/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the small parsers of values that come from outside: semantic versions (manifests, TUF custom
 * data, version files), durations and sizes (config, updatectl postpone), HTTP Content-Range (servers),
 * the support date (manifests, config), RFC 3339 timestamps (manifests, TUF), upkeep.slot= on the kernel
 * command line and os-release's VERSION_ID. The first byte picks the parser; the rest is the text. */
#include "conf.h"
#if HAVE_DAEMON
#include "fetch.h"
#endif
#include "fuzz.h"
#include "install.h"
#include "parse-util.h"
#include "support.h"
#include "time-util.h"
#include "version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char text[512];
        uint64_t a, b, c;
        int64_t days;
        Version v, w;

        if (size < 1 || size > sizeof(text))
                return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;
        switch (data[0] % 8) {
        case 0:
                if (version_parse(text, &v) >= 0) {
                        if (version_compare(&v, &v) != 0)
                                abort();
                        int x, y;
                        if (version_parse("1.0.0", &w) < 0)
                                abort();
                        x = version_compare(&v, &w);
                        y = version_compare(&w, &v);
                        if ((x > 0) != (y < 0) || (x == 0) != (y == 0))
                                abort(); /* precedence is antisymmetric */
                }
                break;
        case 1:
                (void)parse_duration_usec(text, &a);
                break;
        case 2:
                (void)parse_size(text, &a);
                break;
        case 3:
#if HAVE_DAEMON
                if (fetch_parse_content_range(text, &a, &b, &c) >= 0 && a > b)
                        abort();
#else
                (void)b;
                (void)c;
#endif
                break;
        case 4:
                (void)date_parse_days(text, &days);
                break;
        case 5: {
                _cleanup_free_ char *slot = NULL;
                if (install_parse_cmdline_slot(text, &slot) > 0 &&
                    (!slot || !slot[0] || strpbrk(slot, " \t\n")))
                        abort();
                break;
        }
        case 6: {
                _cleanup_free_ char *version = NULL;
                UpkErr err = {};
                if (install_parse_version_file(text, "fuzz", &version, &err) >= 0) {
                        if (version_parse(version, &v) < 0)
                                abort(); /* what it returns is a semantic version */
                } else if (!err.msg[0])
                        abort();
                break;
        }
        case 7: {
                int64_t t, u;
                if (timestamp_parse(text, TIMESTAMP_UTC_SECONDS, &t) >= 0 &&
                    (timestamp_parse(text, 0, &u) < 0 || t != u || t < 0))
                        abort(); /* the strict form is a subset, 1970 or later */
                break;
        }
        }
        return 0;
}
