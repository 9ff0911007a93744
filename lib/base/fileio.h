/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Files: bounded whole-file reads, full writes, atomic replacement, mkdir -p. -errno on failure. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

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

/* Whether root may trust `path` (a configuration, a key, a program it runs), as sshd and sudo judge it:
 * the file and every folder above it, after resolving symbolic links, belong to root (or to the user
 * running upkeep) and are not writable by others; a folder above it that others may write is fine when it
 * is sticky and root's (/tmp). With `secret` (a private key) the file must not be readable by others
 * either. 0 when it may be trusted; -EPERM (kind UPK_ERR_CONFIG) with one sentence naming the path, the
 * problem and the remedy ("/etc/upkeep/keyring.pem is writable by others (mode 0666): run chmod o-w
 * /etc/upkeep/keyring.pem"); another -errno when it cannot be examined (-ENOENT: it does not exist). */
int path_check_trusted(const char *path, bool secret, UpkErr *err);

/* Open the folder `path` (absolute) for openat() and friends without following a symbolic link in any
 * component: openat2() with RESOLVE_NO_SYMLINKS, or, where the kernel or a seccomp filter lacks it,
 * open_dir_nofollow_walk(). A close-on-exec descriptor, or -errno: -ELOOP when a component is a symbolic
 * link, -EINVAL for a relative path. */
int open_dir_nofollow(const char *path);
/* The fallback of open_dir_nofollow(): from "/" one component at a time with O_NOFOLLOW. */
int open_dir_nofollow_walk(const char *path);
