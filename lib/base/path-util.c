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

/* Where an absolute path may start: at the start of the text, or after a blank, a quote, an opening
 * bracket, '=' or ','. Not after ':' or '/', so the "//" of a URL is not a path. */
static bool path_starts_at(const char *text, const char *p)
{
        if (p[0] != '/' || p[1] == 0 || strchr(" \t\n", p[1]))
                return false;
        return p == text || strchr(" \t\n\"'([{=,", p[-1]);
}

/* The end of the path that starts at `p`: the closing quote when it is quoted, else a blank, a quote,
 * a closing bracket, ',' or ';', or a ':' before a blank, a digit or the end (a path's "%m" or line
 * number). */
static const char *path_end(const char *text, const char *p)
{
        char quote = p > text && (p[-1] == '"' || p[-1] == '\'') ? p[-1] : 0;

        for (; *p; p++) {
                if (quote) {
                        if (*p == quote)
                                break;
                } else if (strchr(" \t\n\"'),;]}", *p) ||
                           (*p == ':' && (p[1] == 0 || p[1] == ' ' || (p[1] >= '0' && p[1] <= '9'))))
                        break;
        }
        return p;
}

char *path_redact(const char *text)
{
        size_t n = 0;
        char *out;

        /* Each replaced path takes at least two bytes of the text (a separator and "/x"). */
        out = malloc(strlen(text) * (sizeof(PATH_REDACTED) / 2 + 1) + 1);
        if (!out)
                return NULL;
        for (const char *p = text; *p;) {
                if (path_starts_at(text, p)) {
                        memcpy(out + n, PATH_REDACTED, sizeof(PATH_REDACTED) - 1);
                        n += sizeof(PATH_REDACTED) - 1;
                        p = path_end(text, p);
                } else
                        out[n++] = *p++;
        }
        out[n] = 0;
        return out;
}
