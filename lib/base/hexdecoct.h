/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Hexadecimal text: digests in manifests and TUF metadata, TUF keys and signatures. */

#include <stddef.h>
#include <stdint.h>

/* The lower-case digit of x & 15. */
char hexchar(unsigned x);
/* 0..15 for 0-9, a-f and A-F; -EINVAL otherwise. */
int unhexchar(char c);

/* Lower-case hex of data[0..len) into `ret`, which must hold 2*len+1 bytes. */
void hex_encode(const void *data, size_t len, char *ret);
/* Exactly 2*len lower-case hex digits into `len` bytes (digests, whose text form is lower case);
 * -EINVAL otherwise, `ret` then undefined. */
int hex_decode(const char *s, uint8_t *ret, size_t len);
/* An even number of hex digits of either case into at most `max` bytes, their number in *ret_len:
 * -EINVAL for an odd length or another character, -E2BIG for more than `max` bytes. */
int hex_decode_any(const char *s, uint8_t *ret, size_t max, size_t *ret_len);
