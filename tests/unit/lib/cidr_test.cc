// cidr_test.cc — CIDR parsing (canonical text) and matching, IPv4 and IPv6.
#include "mailgate/cidr.h"

#include <gtest/gtest.h>

using namespace mailgate;

TEST(Cidr, ParsesAndCanonicalises) {
  EXPECT_EQ(parseCidr("192.0.2.77/24")->toString(), "192.0.2.0/24");
  EXPECT_EQ(parseCidr("192.0.2.7")->toString(), "192.0.2.7/32");
  EXPECT_EQ(parseCidr("2001:db8::1/32")->toString(), "2001:db8::/32");
  EXPECT_EQ(parseCidr("0.0.0.0/0")->toString(), "0.0.0.0/0");
}

TEST(Cidr, RejectsBadInput) {
  for (const char* bad : {"", "192.0.2.0/33", "192.0.2/24", "2001:db8::/129", "x/1", "1.2.3.4/", "1.2.3.4/-1",
                          "1.2.3.4/2x", "[::1]/128"}) {
    EXPECT_FALSE(parseCidr(bad).has_value()) << bad;
  }
}

TEST(Cidr, MatchesIpv4) {
  auto c = *parseCidr("192.0.2.128/25");
  EXPECT_TRUE(c.contains("192.0.2.200"));
  EXPECT_FALSE(c.contains("192.0.2.127"));
  EXPECT_FALSE(c.contains("garbage"));
  EXPECT_FALSE(c.contains("2001:db8::1"));
  EXPECT_TRUE(c.contains("::ffff:192.0.2.129"));
  EXPECT_TRUE(parseCidr("0.0.0.0/0")->contains("203.0.113.9"));
}

TEST(Cidr, MatchesIpv6) {
  auto c = *parseCidr("2001:db8:abcd::/48");
  EXPECT_TRUE(c.contains("2001:db8:abcd:1::5"));
  EXPECT_FALSE(c.contains("2001:db8:abce::5"));
  EXPECT_FALSE(c.contains("192.0.2.1"));
  EXPECT_TRUE(parseCidr("::1")->contains("::1"));
}
