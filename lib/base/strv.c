/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "strv.h"

char **strv_free(char **l)
{
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
        return NULL;
}

char **strv_free_erase(char **l)
{
        for (char **p = l; p && *p; p++)
                explicit_bzero(*p, strlen(*p));
        return strv_free(l);
}

int strv_copy(const char *const *l, char ***ret)
{
        _cleanup_strv_free_erase_ char **v = NULL;
        size_t n = 0;

        if (!l) {
                *ret = NULL;
                return 0;
        }
        while (l[n])
                n++;
        v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                v[i] = strdup(l[i]);
                if (!v[i])
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

size_t strv_length(char *const *l)
{
        size_t n = 0;

        for (char *const *p = l; p && *p; p++)
                n++;
        return n;
}

bool strv_contains(char *const *l, const char *s)
{
        for (char *const *p = l; p && *p; p++)
                if (streq(*p, s))
                        return true;
        return false;
}
