/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* File paths and URL paths as text; nothing here touches the file system. */

/* The folder part of `path` as POSIX dirname(3) has it, in a new string: "a/b" and "a/b/" give "a",
 * "/b" gives "/", "b" and "" give ".". NULL on OOM. */
char *path_dirname(const char *path);
/* The last component: what follows the last '/' (all of `path` without one). Points into `path`; ""
 * when `path` ends in '/'. */
const char *path_basename(const char *path);
/* BASE + "/" + NAME in a new string, without a second '/' when BASE already ends in one; for file paths
 * and for URLs. NULL on OOM. */
char *path_join(const char *base, const char *name);

/* What replaces a path in path_redact()'s output. */
#define PATH_REDACTED "<path>"
/* `text` (a message) with every absolute file path in it replaced by PATH_REDACTED, for readers who
 * may see the message but not where root's files are (upkeep-dbus(7)). A path starts with '/' at the
 * start of the text or after a blank, quote, '(', '[', '{', '=' or ','; a quoted one ends at its
 * closing quote, any other at a blank, quote, ')', ']', '}', ',', ';' or a ':' followed by a blank, a
 * digit or the end. URLs ("https://host/x") are kept. NULL on OOM. */
char *path_redact(const char *text);
