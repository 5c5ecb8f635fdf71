// complaints.cc — feedback-loop reports: turns a parsed report into a
// complaint (event, stoplist entry, complaint record: written once per
// account, recipient and queue id) or a kept report, and lists complaints.
#include "mailgate/complaints.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "mailgate/address.h"
#include "mailgate/limits.h"
#include "mailgate/list_unsubscribe.h"
#include "mailgate/store.h"
#include "mailgate/unsubscribe_token.h"

namespace mailgate {
namespace {

constexpr int64_t kStatsTtlSeconds = 400 * 86400;

std::string unbracketed(std::string s) {
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') return s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

bool isComplaintType(const std::string& t) { return t == "abuse" || t == "fraud" || t == "virus"; }

ComplaintPlan planComplaint(const Result<ComplaintReport>& report, int64_t now_ms) {
  ComplaintPlan plan;
  plan.event.time_ms = now_ms;
  if (!report) {
    plan.outcome = "unparseable";
    plan.reason = report.error().message;
    return plan;
  }
  const ComplaintReport& r = *report;
  plan.feedback_type = r.feedback_type;
  plan.user_agent = r.user_agent;
  plan.reporting_mta = r.reporting_mta;
  if (!isComplaintType(r.feedback_type)) {
    plan.outcome = "ignored";
    plan.reason = "Feedback-Type " + r.feedback_type + " is not a complaint";
    return plan;
  }
  if (r.account.empty()) {
    plan.outcome = "unattributed";
    plan.reason = "no Feedback-ID of ours in the original message";
    return plan;
  }
  if (r.recipient.empty()) {
    plan.outcome = "unattributed";
    plan.reason = "no recipient (Original-Rcpt-To, X-HmXmrOriginalRecipient or To) or redacted";
    return plan;
  }
  plan.outcome = "complained";
  Event& e = plan.event;
  e.status = "complained";
  e.account = r.account;
  e.campaign = r.campaign;
  e.letter_id = r.letter_id;
  e.rcpt = r.recipient;
  e.message_id = r.message_id;
  e.from = unbracketed(r.original_mail_from);
  // The first Received of the original is our Postfix's (the sender's
  // client adds none): its queue id.
  if (!r.queue_id.empty()) e.queue_id = r.queue_id;
  else if (!r.received_ids.empty()) e.queue_id = r.received_ids.back();
  e.code = r.feedback_type;
  e.text = r.user_agent + (r.reporting_mta.empty() ? "" : " via " + r.reporting_mta);
  return plan;
}

bool attributeByUnsubscribeToken(ComplaintReport& r, const std::vector<std::string>& secrets, int64_t now_s) {
  if (secrets.empty()) return false;
  for (const auto& url : listUnsubscribeUrls(r.list_unsubscribe)) {
    size_t at = url.rfind("/u/");
    if (at == std::string::npos || !url.starts_with("https://")) continue;
    // Any age: the lifetime bounds unsubscribing, not who was mailed.
    TokenCheck check = verifyUnsubscribeToken(std::string_view(url).substr(at + 3), secrets, now_s,
                                              std::chrono::seconds(now_s + kTokenClockSkew.count()));
    if (!check.ok()) continue;
    auto mailbox = parseMailbox(check.token->recipient);
    if (!mailbox) continue;
    r.account = check.token->account;
    r.campaign = check.token->campaign;
    r.recipient = mailbox->key();
    r.queue_id = check.token->queue_id;
    return true;
  }
  return false;
}

Result<bool> recordComplaint(RedisConn& redis, const Config& config, const ComplaintPlan& plan,
                             std::string_view message) {
  StoreKeys keys(config.redis_prefix);
  std::string stats = keys.fblStats(utcDate(plan.event.time_ms));
  std::vector<Command> cmds;
  if (plan.outcome != "complained") {
    nlohmann::json kept{{"time", plan.event.time_ms},
                        {"outcome", plan.outcome},
                        {"reason", plan.reason},
                        {"message", std::string(message.substr(0, kKeptReportBytes))}};
    cmds = {{"LPUSH", keys.fblKept(), jsonText(kept)},
            {"LTRIM", keys.fblKept(), "0", std::to_string(kKeptReportsMax - 1)},
            {"HINCRBY", stats, plan.outcome, "1"},
            {"EXPIRE", stats, std::to_string(kStatsTtlSeconds)}};
    auto s = writeRecord(redis, cmds);
    if (!s) return s.error();
    return true;
  }
  const Event& e = plan.event;
  nlohmann::json entry{{"time", e.time_ms},         {"rcpt", e.rcpt},
                       {"campaign", e.campaign},    {"qid", e.queue_id},
                       {"feedback_type", plan.feedback_type}, {"user_agent", plan.user_agent},
                       {"reporting_mta", plan.reporting_mta}};
  Command guard{"HSETNX", keys.complaints(e.account), e.rcpt + " " + e.queue_id, jsonText(entry)};
  cmds.push_back({"SADD", keys.stoplist(e.account), e.rcpt});
  for (auto& c : outcomeCommands(config, {e}, nullptr)) cmds.push_back(std::move(c));
  cmds.push_back({"HINCRBY", stats, "complained", "1"});
  cmds.push_back({"EXPIRE", stats, std::to_string(kStatsTtlSeconds)});
  return writeRecordOnce(redis, guard, cmds);
}

Result<std::vector<ComplaintEntry>> listComplaints(RedisConn& redis, const Config& config,
                                                   const std::string& account) {
  auto r = redis.command({"HVALS", StoreKeys(config.redis_prefix).complaints(account)});
  if (!r) return r.error();
  std::vector<ComplaintEntry> out;
  for (size_t i = 0; i < (*r)->elements; ++i) {
    auto j = nlohmann::json::parse(replyString((*r)->element[i]), nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    out.push_back(ComplaintEntry{j.value("time", int64_t{0}), j.value("rcpt", ""), j.value("campaign", ""),
                                 j.value("qid", ""), j.value("feedback_type", ""), j.value("user_agent", ""),
                                 j.value("reporting_mta", "")});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time_ms > b.time_ms; });
  return out;
}

}  // namespace mailgate
