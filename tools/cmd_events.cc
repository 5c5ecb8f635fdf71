// cmd_events.cc — `mailgatectl config check|defaults`, `events` (with --follow),
// `message QUEUEID` and `stats`: reading what the daemons recorded.
#include <algorithm>
#include <iostream>
#include <map>
#include <unistd.h>

#include "ctl.h"
#include "mailgate/events.h"
#include "mailgate/feedback_stats.h"
#include "mailgate/limits.h"

namespace mailgate::ctl {

int cmdConfigDefaults(const Args& a) {
  if (a.json) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [name, value] : configDefaults()) out[name] = value;
    printJson(out);
    return 0;
  }
  for (const auto& [name, value] : configDefaults()) std::cout << name << (value.empty() ? " =" : " = ") << value << "\n";
  return 0;
}

int cmdConfigCheck(const Args& a) {
  Config c = loadOrDie(a);
  if (a.json) printJson({{"config", c.path}, {"valid", true}});
  else std::cout << c.path << ": ok\n";
  return 0;
}

namespace {

nlohmann::json eventJson(const Event& e) {
  return {{"id", e.id},         {"time", utcTimestamp(e.time_ms)}, {"queue_id", e.queue_id}, {"status", e.status},
          {"account", e.account}, {"key_id", e.key_id},       {"campaign", e.campaign}, {"letter_id", e.letter_id},
          {"from", e.from},     {"rcpt", e.rcpt},             {"code", e.code},         {"text", e.text},
          {"message_id", e.message_id}};
}

std::vector<std::string> eventRow(const Event& e) {
  return {utcTimestamp(e.time_ms), e.queue_id, e.status, e.account,   e.key_id, e.campaign,
          e.letter_id,             e.from,     e.rcpt,   e.code,      e.text};
}

const std::vector<std::string> kEventHeader{"TIME",     "QUEUE-ID",  "STATUS", "ACCOUNT", "KEY", "CAMPAIGN",
                                            "LETTER-ID", "FROM",     "RCPT",   "CODE",    "TEXT"};

// A q:<queueid> field as shown: "time" (epoch milliseconds) in UTC ISO form.
std::string recordValue(const std::string& name, const std::string& value) {
  bool millis = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos && value.size() < 19;
  return name == "time" && millis ? utcTimestamp(std::stoll(value)) : value;
}

void printEvents(const Args& a, const std::vector<Event>& events, bool header) {
  if (a.json) {
    for (const Event& e : events) std::cout << jsonText(eventJson(e)) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  if (header) rows.push_back(kEventHeader);
  for (const Event& e : events) rows.push_back(eventRow(e));
  printTable(rows);
}

}  // namespace

int cmdEvents(const Args& a) {
  expectWords(a, 1, "events [--count N] [--account NAME] [--follow]");
  Config c = loadOrDie(a);
  RedisConn redis(RedisSettings::fromConfig(c));
  auto latest = orDie(latestEvents(redis, c, a.count));
  std::string last = latest.empty() ? "$" : latest.front().id;  // newest seen: --follow starts after it
  std::vector<Event> events;
  for (auto& e : latest) {
    if (a.account.empty() || e.account == a.account) events.push_back(std::move(e));
  }
  if (!a.follow) {
    if (a.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const Event& e : events) out.push_back(eventJson(e));
      printJson(out);
      return 0;
    }
    printEvents(a, events, true);
    if (events.empty()) std::cout << "(no events)\n";
    return 0;
  }
  // --follow: oldest first, then new events as they arrive (one line each).
  std::reverse(events.begin(), events.end());
  printEvents(a, events, true);
  RedisSettings slow = RedisSettings::fromConfig(c);
  slow.timeout = std::chrono::milliseconds(10000);
  RedisConn follower(slow);
  while (true) {
    auto more = eventsAfter(follower, c, last, 5000);
    if (!more) {
      std::cerr << "mailgatectl: " << more.error().message << " (retrying)\n";
      sleep(1);
      continue;
    }
    std::vector<Event> shown;
    for (auto& e : *more) {
      last = e.id;
      if (a.account.empty() || e.account == a.account) shown.push_back(std::move(e));
    }
    printEvents(a, shown, false);
    std::cout.flush();
  }
}

int cmdMessage(const Args& a) {
  expectWords(a, 2, "message QUEUEID");
  Config c = loadOrDie(a);
  RedisConn redis(RedisSettings::fromConfig(c));
  const std::string& qid = a.words[1];
  auto record = orDie(redis.command({"HGETALL", StoreKeys(c.redis_prefix).queueRecord(qid)}));
  auto events = orDie(eventsOfMessage(redis, c, qid, 100000));
  if (record->elements == 0 && events.empty()) die("no record of queue id " + qid);
  if (a.json) {
    nlohmann::json rec = nlohmann::json::object();
    for (size_t i = 0; i + 1 < record->elements; i += 2) {
      std::string name = replyString(record->element[i]);
      rec[name] = recordValue(name, replyString(record->element[i + 1]));
    }
    nlohmann::json evs = nlohmann::json::array();
    for (const Event& e : events) evs.push_back(eventJson(e));
    printJson({{"queue_id", qid}, {"record", rec}, {"events", evs}});
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"queue id:", qid}};
  for (size_t i = 0; i + 1 < record->elements; i += 2) {
    std::string name = replyString(record->element[i]);
    rows.push_back({name + ":", recordValue(name, replyString(record->element[i + 1]))});
  }
  printTable(rows);
  std::cout << "\n";
  printEvents(a, events, true);
  return 0;
}

int cmdStats(const Args& a) {
  expectWords(a, 2, "stats NAME [--day YYYY-MM-DD] [--campaign C]");
  Config c = loadOrDie(a);
  RedisConn redis(RedisSettings::fromConfig(c));
  std::string day = a.day.empty() ? utcDate(nowMillis()) : a.day;
  StoreKeys keys(c.redis_prefix);
  // Campaign counters live in cstats:; days written by earlier versions
  // have them in stats: as well.
  const std::string& account = a.words[1];
  auto r = orDie(redis.pipeline({{"HGETALL", keys.stats(account, day)},
                                 {"HGETALL", keys.campaignStats(account, day)},
                                 {"SCARD", keys.campaigns(account, day)}}));
  std::string prefix = a.campaign.empty() ? "" : a.campaign + ":";
  std::map<std::string, long long> sums, campaign_counts;
  for (size_t h = 0; h < 2; ++h) {
    for (size_t i = 0; r[h]->type == REDIS_REPLY_ARRAY && i + 1 < r[h]->elements; i += 2) {
      std::string field = replyString(r[h]->element[i]);
      long long n = std::atoll(replyString(r[h]->element[i + 1]).c_str());
      bool campaign_field = field.find(':') != std::string::npos;
      if (campaign_field) campaign_counts[field] += n;
      if (prefix.empty() ? campaign_field : !field.starts_with(prefix)) continue;
      sums[field.substr(prefix.size())] += n;
    }
  }
  long long campaigns = r[2]->type == REDIS_REPLY_INTEGER ? r[2]->integer : 0;
  auto rate = complaintRate(sums["complained"], sums["delivered"]);
  std::vector<CampaignFeedback> feedback;
  if (a.campaign.empty()) feedback = campaignFeedback(campaign_counts);
  if (a.json) {
    nlohmann::json out = nlohmann::json::object(), per_campaign = nlohmann::json::array();
    for (const auto& [status, n] : sums)
      if (n != 0) out[status] = n;
    for (const auto& row : feedback)
      per_campaign.push_back({{"campaign", row.campaign}, {"delivered", row.delivered},
                              {"unsubscribed", row.unsubscribed}, {"complained", row.complained},
                              {"complaint_rate", row.rate() ? nlohmann::json(*row.rate()) : nlohmann::json()}});
    printJson({{"account", account}, {"day", day}, {"campaign", a.campaign}, {"counts", out},
               {"complaint_rate", rate ? nlohmann::json(*rate) : nlohmann::json()},
               {"complaint_rate_warning", rate && *rate > kComplaintRateWarn}, {"feedback_by_campaign", per_campaign},
               {"campaigns", campaigns}, {"max_campaigns_per_day", c.max_campaigns_per_day}});
    return 0;
  }
  std::cout << "account " << account << ", " << day << (a.campaign.empty() ? "" : ", campaign " + a.campaign)
            << "\n";
  std::vector<std::vector<std::string>> rows{{"STATUS", "COUNT"}};
  for (const auto& [status, n] : sums)
    if (n != 0) rows.push_back({status, std::to_string(n)});
  printTable(rows);
  std::cout << "complaint rate: " << formatRate(rate) << " (" << sums["complained"] << " complained / "
            << sums["delivered"] << " delivered)\n";
  if (rate && *rate > kComplaintRateWarn)
    std::cout << "warning: complaint rate above " << formatRate(kComplaintRateWarn)
              << ", the rate Gmail asks bulk senders to stay under\n";
  if (!feedback.empty()) {
    std::vector<std::vector<std::string>> by_campaign{
        {"CAMPAIGN", "DELIVERED", "UNSUBSCRIBED", "COMPLAINED", "COMPLAINT RATE"}};
    for (const auto& row : feedback)
      by_campaign.push_back({row.campaign, std::to_string(row.delivered), std::to_string(row.unsubscribed),
                             std::to_string(row.complained),
                             formatRate(row.rate()) + (row.rate() > kComplaintRateWarn ? " (above " + formatRate(kComplaintRateWarn) + ")" : "")});
    printTable(by_campaign);
  }
  std::cout << "campaigns with their own counters: " << campaigns << " (max_campaigns_per_day "
            << c.max_campaigns_per_day << ", later ones counted as " << kOtherCampaigns << ")\n";
  return 0;
}

}  // namespace mailgate::ctl
