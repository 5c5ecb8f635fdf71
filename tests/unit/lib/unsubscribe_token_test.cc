// unsubscribe_token_test.cc — unsubscribe tokens: round trip and size, every
// single-character and single-byte change refused, the previous secret
// accepted and an unknown one refused, expiry and clock skew, a recipient
// that cannot be swapped; the web_secret_file text; strict base64url.
#include "mailgate/unsubscribe_token.h"

#include <gtest/gtest.h>

#include "mailgate/crypto.h"

using namespace mailgate;
using namespace std::chrono_literals;

namespace {

const std::string kCurrent = "current-secret-0123456789abcdefghijklmnop";
const std::string kPrevious = "previous-secret-0123456789abcdefghijklmno";
constexpr int64_t kIssued = 1795650000;  // 2026-11-25
constexpr std::chrono::seconds kLifetime = 365 * 24h;

UnsubscribeToken sample() { return {"shop", "bob@example.net", "spring-sale", "4XyZ1abcQ9", kIssued}; }

std::string issue(const UnsubscribeToken& t = sample(), const std::string& secret = kCurrent) {
  auto token = issueUnsubscribeToken(t, secret);
  EXPECT_TRUE(token.has_value());
  return token.value_or("");
}

TokenCheck verify(std::string_view token, int64_t now = kIssued + 60) {
  return verifyUnsubscribeToken(token, {kCurrent, kPrevious}, now, kLifetime);
}

TEST(UnsubscribeToken, RoundTripAndSize) {
  std::string token = issue();
  // 5 + (1+4) + (1+15) + (1+11) + (1+10) + 16 bytes = 65 -> 87 characters
  EXPECT_EQ(token.size(), 87u);
  EXPECT_EQ(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  TokenCheck check = verify(token);
  ASSERT_TRUE(check.ok()) << tokenErrorText(check.error);
  EXPECT_EQ(check.error, TokenError::None);
  EXPECT_EQ(*check.token, sample());
  // The same fields, time and secret: the same token (nothing random in it).
  EXPECT_EQ(issue(), token);
  EXPECT_EQ(unsubscribeUrl("https://mail.example.com", token), "https://mail.example.com/u/" + token);
}

TEST(UnsubscribeToken, TheLargestTheMilterIssuesIs714Characters) {
  UnsubscribeToken t{std::string(64, 'a'), std::string(64, 'l') + "@" + std::string(189, 'd'),
                     std::string(128, 'c'), std::string(64, 'q'), kIssued};
  std::string token = issue(t);
  EXPECT_EQ(token.size(), 714u);
  EXPECT_EQ(*verify(token).token, t);
  // Fields up to kMaxTokenField bytes; longer, or a time past 32 bits: no token.
  t.recipient = std::string(255, 'r');
  EXPECT_TRUE(issueUnsubscribeToken(t, kCurrent).has_value());
  t.recipient = std::string(256, 'r');
  EXPECT_FALSE(issueUnsubscribeToken(t, kCurrent).has_value());
  EXPECT_FALSE(issueUnsubscribeToken({"a", "b", "c", "d", INT64_C(0x100000000)}, kCurrent).has_value());
  EXPECT_FALSE(issueUnsubscribeToken(sample(), "").has_value());
  // Empty fields are still fields.
  UnsubscribeToken empty{"", "", "", "", 0};
  EXPECT_EQ(*verifyUnsubscribeToken(issue(empty), {kCurrent}, 0, kLifetime).token, empty);
}

TEST(UnsubscribeToken, EverySingleCharacterChangeIsRefused) {
  const std::string token = issue();
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. ";
  size_t tried = 0;
  for (size_t i = 0; i < token.size(); ++i) {
    for (char c : alphabet) {
      if (c == token[i]) continue;
      std::string changed = token;
      changed[i] = c;
      TokenCheck check = verify(changed);
      EXPECT_FALSE(check.ok()) << "position " << i << " -> " << c;
      EXPECT_NE(check.error, TokenError::Expired);
      ++tried;
    }
  }
  EXPECT_GT(tried, 87u * 60);
  // Cut, extended, emptied.
  for (std::string changed : {token.substr(1), token.substr(0, token.size() - 1), token + "A", token + "AA",
                              std::string(), std::string("A")}) {
    EXPECT_FALSE(verify(changed).ok()) << changed;
  }
}

TEST(UnsubscribeToken, EverySingleByteChangeIsRefused) {
  const std::string raw = *base64UrlDecode(issue());
  for (size_t i = 0; i < raw.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string changed = raw;
      changed[i] = static_cast<char>(changed[i] ^ (1 << bit));
      TokenCheck check = verify(base64UrlEncode(changed));
      EXPECT_FALSE(check.ok()) << "byte " << i << " bit " << bit;
      // A change of the MAC or of a field's content is a bad signature; of a
      // length byte or the kind, malformed (the fields no longer fill it).
      EXPECT_TRUE(check.error == TokenError::BadSignature || check.error == TokenError::Malformed);
    }
  }
  std::string truncated_mac = raw.substr(0, raw.size() - 1);
  EXPECT_EQ(verify(base64UrlEncode(truncated_mac)).error, TokenError::Malformed);
}

TEST(UnsubscribeToken, PreviousSecretAcceptedUnknownRefused) {
  std::string under_previous = issue(sample(), kPrevious);
  ASSERT_TRUE(verify(under_previous).ok());
  EXPECT_EQ(verify(under_previous).token->recipient, "bob@example.net");
  // After the rotation ends (the previous secret dropped): refused.
  EXPECT_EQ(verifyUnsubscribeToken(under_previous, {kCurrent}, kIssued, kLifetime).error, TokenError::BadSignature);
  std::string unknown = issue(sample(), "another-secret-nobody-configured-here-x");
  EXPECT_EQ(verify(unknown).error, TokenError::BadSignature);
  EXPECT_EQ(verifyUnsubscribeToken(issue(), {}, kIssued, kLifetime).error, TokenError::BadSignature);
  EXPECT_STREQ(tokenErrorText(TokenError::BadSignature), "bad token signature");
}

TEST(UnsubscribeToken, ExpiredAndFromTheFutureRefused) {
  std::string token = issue();
  EXPECT_TRUE(verify(token, kIssued + kLifetime.count()).ok());
  EXPECT_EQ(verify(token, kIssued + kLifetime.count() + 1).error, TokenError::Expired);
  EXPECT_TRUE(verify(token, kIssued - kTokenClockSkew.count()).ok());
  EXPECT_EQ(verify(token, kIssued - kTokenClockSkew.count() - 1).error, TokenError::Expired);
  EXPECT_STREQ(tokenErrorText(TokenError::Expired), "expired token");
  // A forged old token is a bad signature, not expired: the age is read after the MAC.
  std::string forged = issue(sample(), "another-secret-nobody-configured-here-x");
  EXPECT_EQ(verify(forged, kIssued + kLifetime.count() * 2).error, TokenError::BadSignature);
}

TEST(UnsubscribeToken, RecipientCannotBeSwapped) {
  // Carol, who got her own token, cannot make one for Bob: the fields are
  // signed, and their bytes cannot be moved between fields.
  UnsubscribeToken carol = sample();
  carol.recipient = "carol@example.net";
  std::string raw = *base64UrlDecode(issue(carol));
  std::string bob_field = std::string(1, '\x0f') + "bob@example.net";
  std::string carol_field = std::string(1, '\x11') + "carol@example.net";
  size_t at = raw.find(carol_field);
  ASSERT_NE(at, std::string::npos);
  std::string swapped = raw;
  swapped.replace(at, carol_field.size(), bob_field);
  EXPECT_EQ(verify(base64UrlEncode(swapped)).error, TokenError::BadSignature);
  // Nor by moving the boundary between account and recipient.
  UnsubscribeToken a{"shopb", "ob@example.net", "c", "q", kIssued}, b{"shop", "bob@example.net", "c", "q", kIssued};
  EXPECT_NE(issue(a), issue(b));
  EXPECT_EQ(*verify(issue(b)).token, b);
}

TEST(UnsubscribeToken, MalformedInputs) {
  for (const char* bad : {"", "A", "AAAA", "!!!!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAA==="}) {
    EXPECT_EQ(verify(bad).error, TokenError::Malformed) << bad;
  }
  // Another token kind, even correctly signed, is not an unsubscribe token.
  std::string raw = *base64UrlDecode(issue());
  raw[0] = 0x02;
  raw.replace(raw.size() - kUnsubscribeMacBytes, kUnsubscribeMacBytes,
              hmacSha256(kCurrent, raw.substr(0, raw.size() - kUnsubscribeMacBytes)).substr(0, kUnsubscribeMacBytes));
  EXPECT_EQ(verify(base64UrlEncode(raw)).error, TokenError::Malformed);
  EXPECT_EQ(verify(std::string(5000, 'A')).error, TokenError::Malformed);
  EXPECT_STREQ(tokenErrorText(TokenError::Malformed), "malformed token");
}

TEST(WebSecrets, OneOrTwoLongEnoughLines) {
  auto one = parseWebSecrets(kCurrent + "\n");
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(*one, std::vector<std::string>{kCurrent});
  auto two = parseWebSecrets("# rotated 2026-11-25\n" + kCurrent + " \r\n\n" + kPrevious);
  ASSERT_TRUE(two) << two.error().message;
  EXPECT_EQ(*two, (std::vector<std::string>{kCurrent, kPrevious}));
  EXPECT_EQ(parseWebSecrets("").error().message, "no secret (expected one line, or two during a rotation)");
  EXPECT_EQ(parseWebSecrets("# only a comment\n").error().message,
            "no secret (expected one line, or two during a rotation)");
  EXPECT_EQ(parseWebSecrets(kCurrent + "\nshort-secret\n").error().message,
            "line 2: secret of 12 bytes; at least 32 are needed (openssl rand -base64 48)");
  EXPECT_EQ(parseWebSecrets(kCurrent + "\n" + kPrevious + "\n" + kCurrent + "x\n").error().message,
            "line 3: a third secret; expected the current one and at most one previous");
  EXPECT_TRUE(parseWebSecrets(std::string(32, 'x')));
  EXPECT_FALSE(parseWebSecrets(std::string(31, 'x')));
}

TEST(Base64Url, StrictAndCanonical) {
  for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("\xfb\xff", 2)}) {
    EXPECT_EQ(base64UrlDecode(base64UrlEncode(s)).value(), s);
  }
  EXPECT_EQ(base64UrlEncode(std::string("\xfb\xff", 2)), "-_8");
  EXPECT_EQ(base64UrlDecode("Zg").value(), "f");
  for (const char* bad : {"Zh", "Zg==", "Z", "+_8", "/_8", "Zg=", "Z g", "Zm9v\n"}) {
    EXPECT_FALSE(base64UrlDecode(bad).has_value()) << bad;
  }
  EXPECT_TRUE(constantTimeEqual("abc", "abc"));
  EXPECT_FALSE(constantTimeEqual("abc", "abd"));
  EXPECT_FALSE(constantTimeEqual("abc", "abcd"));
}

}  // namespace
