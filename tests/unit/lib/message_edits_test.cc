// message_edits_test.cc — recipient removals, header edits and DKIM
// signatures through a fake MTA that can refuse a change: any refusal
// tempfails (no signature over a header the MTA did not take, no delivery to
// a recipient it did not remove), whether or not there is a signature.
#include "mailgate/message_edits.h"

#include <gtest/gtest.h>

using namespace mailgate;

namespace {

// Records every change; refuses the one named `refuse`.
struct FakeMta : MessageEditor {
  std::string refuse;
  std::vector<std::string> log;
  bool record(const std::string& what, const std::string& name) {
    if (name == refuse) return false;
    log.push_back(what + " " + name);
    return true;
  }
  bool removeRecipient(const std::string& rcpt) override { return record("delrcpt", rcpt); }
  bool addHeader(const std::string& name, const std::string&) override { return record("add", name); }
  bool changeHeader(const std::string& name, int index, const std::string& value) override {
    return record((value.empty() ? "delete#" : "change#") + std::to_string(index), name);
  }
  bool prependHeader(const std::string& name, const std::string&) override { return record("prepend", name); }
  bool replaceBody(const std::string&) override { return record("replace", "body"); }
};

const std::vector<std::string> kRemove = {"stopped@example.net", "test@test.ru"};
const std::vector<HeaderEdit> kEdits = {{HeaderEdit::Kind::Change, "X-Campaign-Id", 1, ""},
                                        {HeaderEdit::Kind::Add, "Feedback-ID", 1, "c:acme:mailgate"},
                                        {HeaderEdit::Kind::Change, "X-Letter-Id", 1, ""}};
const std::vector<std::string> kSignatures = {"v=1; a=rsa-sha256; d=shop.example", "v=1; a=ed25519-sha256"};

TEST(ApplyEdits, RecipientsThenEveryEditThenTheSignatures) {
  FakeMta mta;
  EditOutcome out = applyEdits(mta, kRemove, kEdits, kSignatures);
  EXPECT_EQ(mta.log, (std::vector<std::string>{"delrcpt stopped@example.net", "delrcpt test@test.ru",
                                               "delete#1 X-Campaign-Id", "add Feedback-ID", "delete#1 X-Letter-Id",
                                               "prepend DKIM-Signature", "prepend DKIM-Signature"}));
  EXPECT_EQ(out.refused, "");
  EXPECT_EQ(out.signatures, 2u);
  EXPECT_FALSE(out.tempfail());
}

// Any refused change tempfails and stops there, with or without signatures:
// a refused removal (the recipient would be delivered), a refused header edit
// (a signature would not verify, and the plan is not what Postfix queues), a
// refused signature.
TEST(ApplyEdits, AnyRefusedChangeTempfails) {
  struct Case {
    std::string refuse;
    std::vector<std::string> signatures;
    std::string refused;
    std::vector<std::string> applied;
  };
  const Case cases[] = {
      {"test@test.ru", kSignatures, "<test@test.ru>", {"delrcpt stopped@example.net"}},
      {"test@test.ru", {}, "<test@test.ru>", {"delrcpt stopped@example.net"}},
      {"Feedback-ID", kSignatures, "Feedback-ID",
       {"delrcpt stopped@example.net", "delrcpt test@test.ru", "delete#1 X-Campaign-Id"}},
      {"Feedback-ID", {}, "Feedback-ID",
       {"delrcpt stopped@example.net", "delrcpt test@test.ru", "delete#1 X-Campaign-Id"}},
      {"DKIM-Signature", kSignatures, "DKIM-Signature",
       {"delrcpt stopped@example.net", "delrcpt test@test.ru", "delete#1 X-Campaign-Id", "add Feedback-ID",
        "delete#1 X-Letter-Id"}},
  };
  for (const Case& c : cases) {
    FakeMta mta;
    mta.refuse = c.refuse;
    EditOutcome out = applyEdits(mta, kRemove, kEdits, c.signatures);
    EXPECT_EQ(out.refused, c.refused) << c.refuse;
    EXPECT_TRUE(out.tempfail()) << c.refuse;
    EXPECT_EQ(out.signatures, 0u) << c.refuse;
    EXPECT_EQ(mta.log, c.applied) << c.refuse;
  }
}

}  // namespace
