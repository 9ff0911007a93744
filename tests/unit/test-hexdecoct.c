/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "hexdecoct.h"
#include "tests.h"

TEST(encode)
{
        static const uint8_t data[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
        char hex[2 * sizeof(data) + 1];

        hex_encode(data, sizeof(data), hex);
        ASSERT_STREQ(hex, "00017f80abff");
        hex_encode(data, 0, hex);
        ASSERT_STREQ(hex, "");
}

TEST(chars)
{
        ASSERT_EQ(hexchar(0), '0');
        ASSERT_EQ(hexchar(10), 'a');
        ASSERT_EQ(hexchar(0x1f), 'f');
        ASSERT_EQ(unhexchar('0'), 0);
        ASSERT_EQ(unhexchar('9'), 9);
        ASSERT_EQ(unhexchar('a'), 10);
        ASSERT_EQ(unhexchar('F'), 15);
        ASSERT_ERR(unhexchar('g'), -EINVAL);
        ASSERT_ERR(unhexchar('/'), -EINVAL);
        ASSERT_ERR(unhexchar(0), -EINVAL);
}

TEST(decode_exact_lower_case)
{
        uint8_t b[3];

        ASSERT_OK(hex_decode("00ab7f", b, sizeof(b)));
        ASSERT_EQ(b[0], 0x00);
        ASSERT_EQ(b[1], 0xab);
        ASSERT_EQ(b[2], 0x7f);
        /* A digest's text is lower case and exactly as long as the digest. */
        ASSERT_ERR(hex_decode("00AB7f", b, sizeof(b)), -EINVAL);
        ASSERT_ERR(hex_decode("00ab7", b, sizeof(b)), -EINVAL);
        ASSERT_ERR(hex_decode("00ab7f00", b, sizeof(b)), -EINVAL);
        ASSERT_ERR(hex_decode("00ab7g", b, sizeof(b)), -EINVAL);
        ASSERT_ERR(hex_decode(" 0ab7f", b, sizeof(b)), -EINVAL);
        ASSERT_OK(hex_decode("", b, 0));
}

TEST(decode_any_length_either_case)
{
        uint8_t b[4];
        size_t n = 99;

        ASSERT_OK(hex_decode_any("DEADbeef", b, sizeof(b), &n));
        ASSERT_EQ(n, 4);
        ASSERT_EQ(b[0], 0xde);
        ASSERT_EQ(b[3], 0xef);
        ASSERT_OK(hex_decode_any("01", b, sizeof(b), &n));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(b[0], 1);
        ASSERT_OK(hex_decode_any("", b, sizeof(b), &n));
        ASSERT_EQ(n, 0);

        n = 99;
        ASSERT_ERR(hex_decode_any("abc", b, sizeof(b), &n), -EINVAL);
        ASSERT_ERR(hex_decode_any("0x12", b, sizeof(b), &n), -EINVAL);
        ASSERT_ERR(hex_decode_any("0011223344", b, sizeof(b), &n), -E2BIG);
        ASSERT_EQ(n, 99); /* not written on failure */
}

TEST(round_trip)
{
        uint8_t data[256], back[256];
        char hex[2 * sizeof(data) + 1];
        size_t n;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)i;
        hex_encode(data, sizeof(data), hex);
        ASSERT_OK(hex_decode(hex, back, sizeof(back)));
        ASSERT_TRUE(memcmp(data, back, sizeof(data)) == 0);
        memset(back, 0, sizeof(back));
        ASSERT_OK(hex_decode_any(hex, back, sizeof(back), &n));
        ASSERT_EQ(n, sizeof(data));
        ASSERT_TRUE(memcmp(data, back, sizeof(data)) == 0);
}
