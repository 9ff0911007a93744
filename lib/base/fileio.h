/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Files: bounded whole-file reads, full writes, atomic replacement, mkdir -p. -errno on failure. */

#include <stddef.h>
#include <sys/types.h>

/* Read a whole file of at most `max` bytes (more is -EFBIG). The buffer gets a trailing NUL not
 * counted in *ret_size. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size);
/* Write all bytes, retrying on EINTR and short writes. */
int loop_write(int fd, const void *buf, size_t len);

/* Replace DIR/NAME atomically with `size` bytes: write a temporary file in DIR, fsync it, rename it
 * over NAME, fsync DIR. A crash at any instant leaves either the old or the new content. */
int write_file_atomic(const char *dir, const char *name, const void *data, size_t size, mode_t mode);
/* mkdir -p with `mode` for the missing components. */
int mkdir_p(const char *path, mode_t mode);
