// message_edits_test.cc — header edits and DKIM signatures through a fake MTA
// that can refuse a change: no signature over a header the MTA did not take.
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
  bool addHeader(const std::string& name, const std::string&) override { return record("add", name); }
  bool changeHeader(const std::string& name, int index, const std::string& value) override {
    return record((value.empty() ? "delete#" : "change#") + std::to_string(index), name);
  }
  bool prependHeader(const std::string& name, const std::string&) override { return record("prepend", name); }
};

const std::vector<HeaderEdit> kEdits = {{HeaderEdit::Kind::Change, "X-Campaign-Id", 1, ""},
                                        {HeaderEdit::Kind::Add, "Feedback-ID", 1, "c:acme:mailgate"},
                                        {HeaderEdit::Kind::Change, "X-Letter-Id", 1, ""}};
const std::vector<std::string> kSignatures = {"v=1; a=rsa-sha256; d=shop.example", "v=1; a=ed25519-sha256"};

TEST(ApplyEdits, EveryEditThenTheSignatures) {
  FakeMta mta;
  EditOutcome out = applyEdits(mta, kEdits, kSignatures, true);
  EXPECT_EQ(mta.log, (std::vector<std::string>{"delete#1 X-Campaign-Id", "add Feedback-ID", "delete#1 X-Letter-Id",
                                               "prepend DKIM-Signature", "prepend DKIM-Signature"}));
  EXPECT_EQ(out.refused, "");
  EXPECT_EQ(out.signatures, 2u);
  EXPECT_FALSE(out.tempfail);
  EXPECT_FALSE(out.signatures_dropped);
}

// A refused edit: never a signature; dkim_on_error = tempfail tempfails,
// accept-unsigned sends unsigned. The other edits are applied either way
// (tags are still stripped).
TEST(ApplyEdits, RefusedEditDropsTheSignatures) {
  struct Case {
    std::string refuse;
    bool tempfail_mode;
    std::vector<std::string> applied;
  };
  for (const Case& c : {Case{"Feedback-ID", true, {"delete#1 X-Campaign-Id", "delete#1 X-Letter-Id"}},
                        Case{"X-Campaign-Id", false, {"add Feedback-ID", "delete#1 X-Letter-Id"}}}) {
    FakeMta mta;
    mta.refuse = c.refuse;
    EditOutcome out = applyEdits(mta, kEdits, kSignatures, c.tempfail_mode);
    EXPECT_EQ(out.refused, c.refuse);
    EXPECT_EQ(out.tempfail, c.tempfail_mode);
    EXPECT_TRUE(out.signatures_dropped);
    EXPECT_EQ(out.signatures, 0u);
    EXPECT_EQ(mta.log, c.applied);
  }
}

TEST(ApplyEdits, RefusedEditWithoutSignaturesIsOnlyReported) {
  FakeMta mta;
  mta.refuse = "Feedback-ID";
  EditOutcome out = applyEdits(mta, kEdits, {}, true);
  EXPECT_EQ(out.refused, "Feedback-ID");
  EXPECT_FALSE(out.tempfail);
  EXPECT_FALSE(out.signatures_dropped);
}

}  // namespace
