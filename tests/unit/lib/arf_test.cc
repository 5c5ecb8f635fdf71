// arf_test.cc — complaint report parsing: each tests/golden/arf/NAME.eml is
// parsed and its fields compared with NAME.ref (or the error with NAME.err);
// plus the edge cases that must be errors, never crashes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "mailgate/arf.h"

namespace mailgate {
namespace {

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string describe(const ComplaintReport& r) {
  std::string ids;
  for (const auto& id : r.received_ids) ids += (ids.empty() ? "" : " ") + id;
  std::string out;
  for (const auto& [name, value] : std::vector<std::pair<const char*, const std::string*>>{
           {"format", &r.format},
           {"feedback_type", &r.feedback_type},
           {"user_agent", &r.user_agent},
           {"reporting_mta", &r.reporting_mta},
           {"version", &r.version},
           {"original_rcpt_to", &r.original_rcpt_to},
           {"original_mail_from", &r.original_mail_from},
           {"arrival_date", &r.arrival_date},
           {"reported_domain", &r.reported_domain},
           {"source_ip", &r.source_ip},
           {"message_id", &r.message_id},
           {"to", &r.to},
           {"from", &r.from},
           {"feedback_id", &r.feedback_id},
           {"campaign_header", &r.campaign_header},
           {"letter_id", &r.letter_id},
           {"list_unsubscribe", &r.list_unsubscribe},
           {"hm_original_recipient", &r.hm_original_recipient},
           {"received_ids", &ids},
           {"account", &r.account},
           {"campaign", &r.campaign},
           {"recipient", &r.recipient}}) {
    out += std::string(name) + ": " + *value + "\n";
  }
  return out;
}

TEST(Arf, GoldenSamples) {
  std::filesystem::path dir = std::filesystem::path(MG_SOURCE_DIR) / "tests/golden/arf";
  int samples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".eml") continue;
    ++samples;
    std::string message = readFile(entry.path());
    auto ref = entry.path();
    auto err = entry.path();
    ref.replace_extension(".ref");
    err.replace_extension(".err");
    auto r = parseComplaintReport(message);
    std::string got = r ? describe(*r) : "error: " + r.error().message + "\n";
    std::string want = std::filesystem::exists(ref) ? readFile(ref) : readFile(err);
    EXPECT_EQ(got, want) << entry.path();
    // The same report with CRLF line ends, as a pipe from Postfix may give it.
    std::string crlf;
    for (char c : message) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    auto r2 = parseComplaintReport(crlf);
    EXPECT_EQ(r2 ? describe(*r2) : "error: " + r2.error().message + "\n", want) << entry.path() << " (CRLF)";
  }
  EXPECT_GE(samples, 5);
}

TEST(Arf, GarbageIsAnErrorNotACrash) {
  for (std::string in : {std::string(), std::string("\0\0\0", 3), std::string("Content-Type: multipart/report\n\n"),
                         std::string("Content-Type: multipart/report; boundary=x\n\n--x\nContent-Type: "
                                     "message/feedback-report\n\nFeedback-Type: abuse\n--x--\n"),
                         std::string(10000, '-')}) {
    auto r = parseComplaintReport(in);
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error().kind, Error::Kind::Invalid);
    }
  }
}

TEST(Arf, ReportWithoutFeedbackTypeIsRefused) {
  std::string in =
      "Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n--b\n"
      "Content-Type: message/feedback-report\n\nUser-Agent: x\n\n--b\nContent-Type: text/rfc822-headers\n\n"
      "Message-Id: <a@b>\nTo: c@d.example\n\n--b--\n";
  auto r = parseComplaintReport(in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "the feedback-report part has no Feedback-Type");
}

}  // namespace
}  // namespace mailgate
