/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "path-util.h"
#include "tests.h"

TEST(dirname)
{
        static const struct {
                const char *path, *dir;
        } cases[] = {
                { "/boot/grub/grubenv", "/boot/grub" },
                { "/var/lib/upkeep/boot-state", "/var/lib/upkeep" },
                { "dir/manifest.json", "dir" },
                { "dir/sub/", "dir" },
                { "dir//file", "dir" },
                { "/file", "/" },
                { "//file", "/" },
                { "/", "/" },
                { "file", "." },
                { "", "." },
                { NULL, "." },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *d = path_dirname(cases[i].path);
                if (!d || !streq(d, cases[i].dir))
                        test_fail("path_dirname(\"%s\") = \"%s\", expected \"%s\"",
                                  cases[i].path ?: "(null)", d ?: "(null)", cases[i].dir);
        }
}

TEST(basename)
{
        ASSERT_STREQ(path_basename("/boot/grub/grubenv"), "grubenv");
        ASSERT_STREQ(path_basename("a/b.conf"), "b.conf");
        ASSERT_STREQ(path_basename("/file"), "file");
        ASSERT_STREQ(path_basename("file"), "file");
        ASSERT_STREQ(path_basename("dir/"), "");
        ASSERT_STREQ(path_basename(""), "");

        /* The folder part with its slash is what precedes the base name. */
        const char *p = "etc/upkeep.conf";
        ASSERT_EQ(path_basename(p) - p, 4);
}

TEST(join)
{
        static const struct {
                const char *base, *name, *joined;
        } cases[] = {
                { "https://updates.example.com/repo", "metadata",
                  "https://updates.example.com/repo/metadata" },
                { "https://updates.example.com/repo/", "targets",
                  "https://updates.example.com/repo/targets" },
                { "http://127.0.0.1:8080", "1.root.json", "http://127.0.0.1:8080/1.root.json" },
                { "/var/lib", "upkeep", "/var/lib/upkeep" },
                { "/", "etc", "/etc" },
                { "", "x", "/x" },
                { "a", "sub/file", "a/sub/file" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *j = path_join(cases[i].base, cases[i].name);
                if (!j || !streq(j, cases[i].joined))
                        test_fail("path_join(\"%s\", \"%s\") = \"%s\", expected \"%s\"", cases[i].base,
                                  cases[i].name, j ?: "(null)", cases[i].joined);
        }
}

TEST(redact)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "", "" },
                { "no path here", "no path here" },
                { "cannot open the bundle \"/root/secret plans/b.upk\": No such file or directory",
                  "cannot open the bundle \"<path>\": No such file or directory" },
                { "cannot open /var/tmp/x.upk: Permission denied", "cannot open <path>: Permission denied" },
                { "/etc/upkeep/upkeep.conf:12: [boot] attempts: must be a number",
                  "<path>:12: [boot] attempts: must be a number" },
                { "health check /etc/upkeep/health.d/10-net exited with status 3: gateway down",
                  "health check <path> exited with status 3: gateway down" },
                { "slot rootfs.B (/dev/mmcblk0p3) is too small", "slot rootfs.B (<path>) is too small" },
                { "target=/opt/app/a.conf, mode=0644", "target=<path>, mode=0644" },
                { "'/a/b' and '/c d/e'", "'<path>' and '<path>'" },
                { "a path:/x:y stays whole /p/q:r", "a path:/x:y stays whole <path>" },
                { "from https://updates.example.com/a/b.upk: 404",
                  "from https://updates.example.com/a/b.upk: 404" },
                { "a / b and a/b and 1/2", "a / b and a/b and 1/2" },
                { "\"/unterminated quote", "\"<path>" },
                { "/", "/" },
                { "/x", "<path>" },
                { "/x /y /z", "<path> <path> <path>" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *r = path_redact(cases[i].in);
                if (!r || !streq(r, cases[i].out))
                        test_fail("path_redact(\"%s\") = \"%s\", expected \"%s\"", cases[i].in,
                                  r ?: "(null)", cases[i].out);
        }
}
