// cmd_fbl.cc — `mailgatectl fbl` (a Postfix pipe transport reads one
// feedback-loop report on stdin) and `mailgatectl complaints list NAME`.
// Exit 0 once the report is recorded or kept; 75 (EX_TEMPFAIL) when Redis
// cannot be written, so that Postfix keeps the report queued and retries.
#include <iostream>
#include <iterator>

#include "ctl.h"
#include "mailgate/complaints.h"
#include "mailgate/log.h"

namespace mailgate::ctl {
namespace {

constexpr int kExTempfail = 75;
// Larger reports are not parsed: kept as unparseable (cut).
constexpr size_t kMaxReportBytes = 10 * 1024 * 1024;

}  // namespace

int cmdFbl(const Args& a) {
  expectWords(a, 1, "fbl < MESSAGE");
  logInit("mailgatectl", false, false);
  std::string message;
  char buf[65536];
  bool too_large = false;
  while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
    if (message.size() < kMaxReportBytes + 1) message.append(buf, static_cast<size_t>(std::cin.gcount()));
    else too_large = true;
  }
  too_large = too_large || message.size() > kMaxReportBytes;
  Result<ComplaintReport> report =
      too_large ? Result<ComplaintReport>(Error{Error::Kind::Invalid, "report over 10 MB"})
                : parseComplaintReport(message);
  Config config;
  try {
    config = loadConfig(a.config_path);
  } catch (const ConfigError& e) {  // an admin's mistake: Postfix keeps the report meanwhile
    MG_LOG_WARN("fbl: %s; report left to Postfix to retry", e.what());
    std::cerr << "mailgatectl fbl: " << e.what() << "\n";
    return kExTempfail;
  }
  int64_t now_ms = nowMillis();
  if (report) attributeByUnsubscribeToken(*report, config.web_secrets, now_ms / 1000);
  ComplaintPlan plan = planComplaint(report, now_ms);
  RedisConn redis(RedisSettings::fromConfig(config));
  auto recorded = recordComplaint(redis, config, plan, message);
  if (!recorded) {
    MG_LOG_WARN("fbl: %s; report left to Postfix to retry", recorded.error().message.c_str());
    std::cerr << "mailgatectl fbl: " << recorded.error().message << "\n";
    return kExTempfail;
  }
  const Event& e = plan.event;
  if (plan.outcome != "complained") {
    MG_LOG_INFO("fbl: report kept (%s): %s", plan.outcome.c_str(), printable(plan.reason).c_str());
  } else if (*recorded) {
    MG_LOG_INFO("%s: complaint (%s) from <%s> for account %s campaign %s: stoplisted", e.queue_id.c_str(),
                printable(plan.feedback_type).c_str(), printable(e.rcpt).c_str(), e.account.c_str(),
                printable(e.campaign).c_str());
  } else {
    MG_LOG_INFO("%s: complaint (%s) from <%s> for account %s recorded before: nothing new", e.queue_id.c_str(),
                printable(plan.feedback_type).c_str(), printable(e.rcpt).c_str(), e.account.c_str());
  }
  if (a.json) {
    printJson({{"outcome", plan.outcome == "complained" && !*recorded ? "duplicate" : plan.outcome},
               {"reason", plan.reason}, {"account", e.account}, {"recipient", e.rcpt}, {"campaign", e.campaign},
               {"queue_id", e.queue_id}, {"feedback_type", plan.feedback_type}});
  }
  return 0;
}

int cmdComplaints(const Args& a) {
  const char* text = "complaints list NAME";
  if (a.words.size() != 3 || a.words[1] != "list") usage(text);
  Context ctx(a);
  auto list = orDie(listComplaints(ctx.redis, ctx.config, a.words[2]));
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : list) {
      out.push_back({{"address", c.recipient}, {"campaign", c.campaign}, {"time", utcTimestamp(c.time_ms)},
                     {"queue_id", c.queue_id}, {"feedback_type", c.feedback_type}, {"user_agent", c.user_agent},
                     {"reporting_mta", c.reporting_mta}});
    }
    printJson(out);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"ADDRESS", "CAMPAIGN", "TIME", "TYPE", "QUEUEID"}};
  for (const auto& c : list) {
    rows.push_back({c.recipient, c.campaign, utcTimestamp(c.time_ms), c.feedback_type, c.queue_id});
  }
  printTable(rows);
  return 0;
}

}  // namespace mailgate::ctl
