// policy_proto_test.cc — policy protocol framing: split reads, many requests
// per buffer, repeated/unknown attributes, Exim half-close, and malformed or
// over-long input.
#include "mailgate/policy_proto.h"

#include <gtest/gtest.h>

using namespace mailgate;
using S = PolicyParser::Status;

namespace {

const char* kRequest =
    "request=smtpd_access_policy\n"
    "protocol_state=RCPT\n"
    "sender=alice@example.org\n"
    "recipient=bob@example.net\n"
    "queue_id=\n"
    "\n";

TEST(PolicyProto, OneRequest) {
  PolicyParser p;
  PolicyRequest r;
  p.feed(kRequest);
  ASSERT_EQ(p.next(r), S::Request);
  EXPECT_EQ(r.get("sender"), "alice@example.org");
  EXPECT_EQ(r.get("queue_id"), "");
  EXPECT_EQ(r.get("absent"), "");
  EXPECT_EQ(p.next(r), S::NeedMore);
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(PolicyProto, ByteByByteAndSeveralPerBuffer) {
  PolicyParser p;
  PolicyRequest r;
  std::string two = std::string(kRequest) + kRequest;
  int got = 0;
  for (char ch : two) {
    p.feed(std::string_view(&ch, 1));
    while (p.next(r) == S::Request) ++got;
  }
  EXPECT_EQ(got, 2);
  p.feed(two);
  EXPECT_EQ(p.next(r), S::Request);
  EXPECT_EQ(p.next(r), S::Request);
  EXPECT_EQ(p.next(r), S::NeedMore);
}

TEST(PolicyProto, ValuesKeepEqualsAndSpacesRepeatedLastWinsCrlfTolerated) {
  PolicyParser p;
  PolicyRequest r;
  p.feed("request=smtpd_access_policy\r\nccert_subject=CN=a b=c\nsender=a@x\nsender=b@x\nx_unknown=1\n\n");
  ASSERT_EQ(p.next(r), S::Request);
  EXPECT_EQ(r.get("ccert_subject"), "CN=a b=c");
  EXPECT_EQ(r.get("sender"), "b@x");
  EXPECT_EQ(r.get("request"), "smtpd_access_policy");
}

TEST(PolicyProto, EximHalfCloseCompletesPendingRequest) {
  PolicyParser p;
  PolicyRequest r;
  p.feed("request=smtpd_access_policy\nsender=a@x");
  EXPECT_EQ(p.next(r), S::NeedMore);
  ASSERT_EQ(p.finish(r), S::Request);
  EXPECT_EQ(r.get("sender"), "a@x");
  EXPECT_EQ(p.finish(r), S::NeedMore);
}

TEST(PolicyProto, FinishWithNothingPending) {
  PolicyParser p;
  PolicyRequest r;
  p.feed(kRequest);
  ASSERT_EQ(p.finish(r), S::Request);
  EXPECT_EQ(p.finish(r), S::NeedMore);
}

TEST(PolicyProto, MalformedLines) {
  for (const char* bad : {"garbage\n\n", "=value\n\n", "request=smtpd_access_policy\nno equals\n\n"}) {
    PolicyParser p;
    PolicyRequest r;
    p.feed(bad);
    EXPECT_EQ(p.next(r), S::Malformed) << bad;
    EXPECT_EQ(p.error(), "malformed attribute line");
  }
}

TEST(PolicyProto, NulByteIsMalformed) {
  PolicyParser p;
  PolicyRequest r;
  p.feed(std::string("request=smtpd_access_policy\nsender=a\0b\n\n", 40));
  EXPECT_EQ(p.next(r), S::Malformed);
}

TEST(PolicyProto, MissingOrWrongRequestAttribute) {
  PolicyParser p;
  PolicyRequest r;
  p.feed("sender=a@x\n\n");
  EXPECT_EQ(p.next(r), S::Malformed);
  EXPECT_EQ(p.error(), "missing request attribute");
  PolicyParser q;
  q.feed("request=junk\n\n");
  EXPECT_EQ(q.next(r), S::Malformed);
  EXPECT_EQ(q.error(), "unsupported request type");
}

TEST(PolicyProto, OverlongLineWithoutNewline) {
  PolicyParser p;
  PolicyRequest r;
  p.feed("request=smtpd_access_policy\nx=");
  p.feed(std::string(kMaxPolicyRequestBytes, 'a'));
  EXPECT_EQ(p.next(r), S::Malformed);
  EXPECT_EQ(p.error(), "request longer than 65536 bytes");
}

TEST(PolicyProto, OverlongRequestOfManyShortLines) {
  PolicyParser p;
  PolicyRequest r;
  std::string many = "request=smtpd_access_policy\n";
  while (many.size() <= kMaxPolicyRequestBytes) many += "x=yyyyyyyyyyyyyyyyyyyy\n";
  p.feed(many + "\n");
  EXPECT_EQ(p.next(r), S::Malformed);
}

TEST(PolicyProto, StrayBlankLinesBetweenRequestsAreIgnored) {
  PolicyParser p;
  PolicyRequest r;
  p.feed(std::string("\n\n") + kRequest);
  EXPECT_EQ(p.next(r), S::Request);
}

TEST(PolicyProto, ReplyFormat) { EXPECT_EQ(formatPolicyReply("DUNNO"), "action=DUNNO\n\n"); }

}  // namespace

TEST(PolicyProto, ReplyWithAttributesForExim) {
  EXPECT_EQ(formatPolicyReply("DUNNO", {"x_account=alpha", "x_dkim_domain=a.example"}),
            "action=DUNNO\nx_account=alpha\nx_dkim_domain=a.example\n\n");
}

// The listener's policy_request_timeout runs while midRequest() is true.
TEST(PolicyProto, MidRequestFromFirstByteToEmptyLine) {
  PolicyParser p;
  PolicyRequest r;
  EXPECT_FALSE(p.midRequest());
  p.feed("r");
  EXPECT_EQ(p.next(r), S::NeedMore);
  EXPECT_TRUE(p.midRequest());
  p.feed("equest=smtpd_access_policy\n");
  EXPECT_EQ(p.next(r), S::NeedMore);
  EXPECT_TRUE(p.midRequest());  // lines without the empty one
  p.feed("\n");
  EXPECT_EQ(p.next(r), S::Request);
  EXPECT_FALSE(p.midRequest());
}
