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
