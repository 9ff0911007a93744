/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "path-util.h"

#include "util.h"

char *path_dirname(const char *path)
{
        size_t n = path ? strlen(path) : 0;

        while (n > 1 && path[n - 1] == '/') /* trailing slashes */
                n--;
        while (n > 0 && path[n - 1] != '/') /* the last component */
                n--;
        if (n == 0)
                return strdup(".");
        while (n > 1 && path[n - 1] == '/') /* the slashes before it */
                n--;
        return strndup(path, n);
}

const char *path_basename(const char *path)
{
        const char *slash = strrchr(path, '/');

        return slash ? slash + 1 : path;
}

char *path_join(const char *base, const char *name)
{
        size_t n = strlen(base);

        return strdup_printf("%s%s%s", base, n > 0 && base[n - 1] == '/' ? "" : "/", name);
}
