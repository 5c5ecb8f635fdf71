// crypto_test.cc — base64 both ways (strict decoding), SHA-256, random keys.
#include "mailgate/crypto.h"

#include <gtest/gtest.h>
#include <vector>

using namespace mailgate;

TEST(Crypto, Base64RoundTrip) {
  for (std::string s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0a\0b", 4)}) {
    auto d = base64Decode(base64Encode(s));
    ASSERT_TRUE(d.has_value()) << s;
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64Encode(std::string("\0\0key", 5)), "AABrZXk=");
}

TEST(Crypto, Base64RejectsBadInput) {
  for (const char* bad : {"a", "abc", "ab=c", "a===", "ab c", "ab\nc", "====", "Zg=a"}) {
    EXPECT_FALSE(base64Decode(bad).has_value()) << bad;
  }
  EXPECT_EQ(base64Decode("Zg==").value(), "f");
  EXPECT_EQ(base64Decode("Zm8=").value(), "fo");
}

TEST(Crypto, Sha256Hex) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, UrlSafeEncodingAndRandomness) {
  EXPECT_EQ(base64UrlEncode("\xfb\xff"), "-_8");
  std::string a = randomBytes(16), b = randomBytes(16);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, b);
}

// Keys are looked up by SHA-256 of the whole key (Store::lookupKey: key:<sha256>),
// never compared byte by byte: no timing oracle, and no prefix short-circuit.
// Keys differing only in the first, a middle or the last character, or longer
// than any buffer, hash apart.
TEST(Crypto, Sha256CoversTheWholeKey) {
  std::string key = "mg_" + std::string(300, 'k');
  std::vector<std::string> near = {key, "X" + key.substr(1), key.substr(0, 150) + "X" + key.substr(151),
                                   key.substr(0, key.size() - 1) + "X", key + "k", key.substr(0, key.size() - 1)};
  for (size_t i = 0; i < near.size(); ++i) {
    for (size_t j = i + 1; j < near.size(); ++j) EXPECT_NE(sha256Hex(near[i]), sha256Hex(near[j])) << i << " " << j;
  }
}
