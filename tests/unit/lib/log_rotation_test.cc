// log_rotation_test.cc — rotated log names, their order, which candidate is
// the saved file, and the reading plan after a saved position (no files).
#include "mailgate/log_rotation.h"

#include <gtest/gtest.h>

namespace mailgate {
namespace {

TEST(ParseRotatedName, SchemesAndCompression) {
  struct Case {
    const char* name;
    bool rotated;
    RotationScheme scheme;
    uint64_t number;
    const char* stamp;
    bool compressed;
  };
  const Case cases[] = {
      {"maillog.1", true, RotationScheme::Numbered, 1, "", false},
      {"maillog.12", true, RotationScheme::Numbered, 12, "", false},
      {"maillog.0", true, RotationScheme::Numbered, 0, "", false},
      {"maillog.2.gz", true, RotationScheme::Numbered, 2, "", true},
      {"maillog.20261202-183005", true, RotationScheme::Dated, 0, "20261202-183005", false},
      {"maillog.20261202-183005.gz", true, RotationScheme::Dated, 0, "20261202-183005", true},
      {"maillog-20261202", true, RotationScheme::Dated, 0, "20261202", false},
      {"maillog-2026120214", true, RotationScheme::Dated, 0, "2026120214", false},
      {"maillog-20261202.xz", true, RotationScheme::Dated, 0, "20261202", true},
      {"maillog.20261202", true, RotationScheme::Dated, 0, "20261202", false},
  };
  for (const auto& c : cases) {
    auto r = parseRotatedName("maillog", c.name);
    ASSERT_TRUE(r.has_value()) << c.name;
    EXPECT_EQ(r->scheme, c.scheme) << c.name;
    EXPECT_EQ(r->number, c.number) << c.name;
    EXPECT_EQ(r->stamp, c.stamp) << c.name;
    EXPECT_EQ(r->compressed, c.compressed) << c.name;
  }
  for (const char* other : {"maillog", "maillog.", "maillog.gz", "maillog.lock", "maillog-1", "maillog-2026",
                            "maillog.20261202-", "maillog.1a", "maillogs.1", "mail.log.1", "xmaillog.1",
                            "maillog.1.bak", "maillog.20261202-18:30"}) {
    EXPECT_FALSE(parseRotatedName("maillog", other).has_value()) << other;
  }
}

LogCandidate rotated(const std::string& name, int64_t mtime = 0) {
  LogCandidate c;
  c.path = "/l/" + name;
  c.rotated = parseRotatedName("maillog", name);
  c.mtime_ms = mtime;
  c.size = 100;
  return c;
}

LogCandidate live() {
  LogCandidate c;
  c.path = "/l/maillog";
  c.size = 100;
  return c;
}

std::vector<std::string> paths(const std::vector<LogCandidate>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs) out.push_back(c.path);
  return out;
}

std::vector<std::string> paths(const ResumePlan& plan) {
  std::vector<std::string> out;
  for (const auto& s : plan.steps) out.push_back(s.path + "@" + std::to_string(s.offset));
  return out;
}

TEST(OrderCandidates, NumberedOldestFirstThenTheLog) {
  auto got = orderCandidates({rotated("maillog.1"), live(), rotated("maillog.10"), rotated("maillog.2")});
  EXPECT_EQ(paths(got), (std::vector<std::string>{"/l/maillog.10", "/l/maillog.2", "/l/maillog.1", "/l/maillog"}));
}

TEST(OrderCandidates, DatedByStampCompressedDropped) {
  auto got = orderCandidates({rotated("maillog.20261202-101500"), rotated("maillog.20261201-235959"),
                              rotated("maillog.20261130-000000.gz"), live()});
  EXPECT_EQ(paths(got), (std::vector<std::string>{"/l/maillog.20261201-235959", "/l/maillog.20261202-101500",
                                                  "/l/maillog"}));
}

TEST(OrderCandidates, MixedSchemesByModificationTime) {
  auto got = orderCandidates({rotated("maillog.1", 300), rotated("maillog-20261201", 100),
                              rotated("maillog.20261202-000000", 200)});
  EXPECT_EQ(paths(got),
            (std::vector<std::string>{"/l/maillog-20261201", "/l/maillog.20261202-000000", "/l/maillog.1"}));
}

TEST(IsSavedFile, FingerprintDecidesNotTheInode) {
  LogPosition saved{7, 50, "abc", 60, 0};
  LogCandidate same_inode = live();
  same_inode.inode = 7;
  same_inode.prefix_fingerprint = "other";
  EXPECT_FALSE(isSavedFile(saved, same_inode));  // the inode was reused by a new file
  LogCandidate moved = rotated("maillog.1");
  moved.inode = 9;
  moved.prefix_fingerprint = "abc";
  EXPECT_TRUE(isSavedFile(saved, moved));
  moved.size = 49;  // shorter than the saved offset: not that file
  EXPECT_FALSE(isSavedFile(saved, moved));
  LogCandidate short_file = rotated("maillog.2");  // shorter than the fingerprint: none computed
  EXPECT_FALSE(isSavedFile(saved, short_file));
}

TEST(IsSavedFile, PositionWithoutFingerprintGoesByInode) {
  LogPosition legacy{7, 50, "", 0, 0};
  LogCandidate c = rotated("maillog.1");
  c.inode = 7;
  EXPECT_TRUE(isSavedFile(legacy, c));
  c.inode = 8;
  EXPECT_FALSE(isSavedFile(legacy, c));
}

TEST(PlanResume, NoSavedPositionReadsTheLogFromTheStart) {
  ResumePlan p = planResume(std::nullopt, "/l/maillog", {rotated("maillog.1"), live()});
  EXPECT_EQ(p.from, ResumeFrom::Start);
  EXPECT_EQ(paths(p), (std::vector<std::string>{"/l/maillog@0"}));
  EXPECT_TRUE(p.steps.back().live);
}

TEST(PlanResume, SavedFileTailThenNewerFilesThenTheLog) {
  LogPosition saved{1, 40, "fp", 60, 0};
  auto r3 = rotated("maillog.3"), r2 = rotated("maillog.2"), r1 = rotated("maillog.1");
  r2.prefix_fingerprint = "fp";
  ResumePlan p = planResume(saved, "/l/maillog", {r1, live(), r3, r2});
  EXPECT_EQ(p.from, ResumeFrom::SavedFile);
  EXPECT_EQ(paths(p), (std::vector<std::string>{"/l/maillog.2@40", "/l/maillog.1@0", "/l/maillog@0"}));
  EXPECT_FALSE(p.steps[0].live);
  EXPECT_TRUE(p.steps.back().live);
}

TEST(PlanResume, TheLogItselfStillTheSavedFile) {
  LogPosition saved{1, 40, "fp", 60, 0};
  LogCandidate l = live();
  l.prefix_fingerprint = "fp";
  ResumePlan p = planResume(saved, "/l/maillog", {rotated("maillog.1"), l});
  EXPECT_EQ(paths(p), (std::vector<std::string>{"/l/maillog@40"}));
}

TEST(PlanResume, NewestMatchWinsWhenTheCopyAndTheLogBothMatch) {
  // copytruncate copied but has not truncated yet: the log still holds everything.
  LogPosition saved{1, 40, "fp", 60, 0};
  LogCandidate l = live(), c = rotated("maillog.1");
  l.prefix_fingerprint = c.prefix_fingerprint = "fp";
  ResumePlan p = planResume(saved, "/l/maillog", {c, l});
  EXPECT_EQ(paths(p), (std::vector<std::string>{"/l/maillog@40"}));
}

TEST(PlanResume, SavedFileGoneReadsFilesChangedSinceTheSave) {
  LogPosition saved{1, 40, "fp", 60, 1000};
  auto older = rotated("maillog.20261201-000000", 900), newer = rotated("maillog.20261202-000000", 1500);
  auto gz = rotated("maillog.20261130-000000.gz", 1200);
  ResumePlan p = planResume(saved, "/l/maillog", {newer, older, gz, live()});
  EXPECT_EQ(p.from, ResumeFrom::NewerFiles);
  EXPECT_EQ(p.skipped_compressed, 1u);
  EXPECT_EQ(paths(p), (std::vector<std::string>{"/l/maillog.20261202-000000@0", "/l/maillog@0"}));
}

TEST(PlanResume, SavedFileGoneWithoutATimeReadsOnlyTheLog) {
  LogPosition saved{1, 40, "", 0, 0};
  ResumePlan p = planResume(saved, "/l/maillog", {rotated("maillog.1", 5), live()});
  EXPECT_EQ(p.from, ResumeFrom::NewerFiles);
  EXPECT_EQ(paths(p), (std::vector<std::string>{"/l/maillog@0"}));
}

TEST(PlanResume, MissingLogIsStillTheLastStep) {
  LogPosition saved{1, 40, "fp", 60, 0};
  auto r1 = rotated("maillog.1");
  r1.prefix_fingerprint = "fp";
  ResumePlan p = planResume(saved, "/l/maillog", {r1});
  EXPECT_EQ(paths(p), (std::vector<std::string>{"/l/maillog.1@40", "/l/maillog@0"}));
  EXPECT_TRUE(p.steps.back().live);
}

}  // namespace
}  // namespace mailgate
