// cmd_events.cc — `mailgatectl config check` and `mailgatectl events`.
#include <iostream>

#include "ctl.h"
#include "mailgate/events.h"

namespace mailgate::ctl {

int cmdConfigCheck(const Args& a) {
  Config c = loadOrDie(a);
  if (a.json) printJson({{"config", c.path}, {"valid", true}});
  else std::cout << c.path << ": ok\n";
  return 0;
}

int cmdEvents(const Args& a) {
  expectWords(a, 1, "events [--count N]");
  Config c = loadOrDie(a);
  RedisConn redis(RedisSettings::fromConfig(c));
  auto events = latestEvents(redis, c, a.count);
  if (!events) die(events.error().message);
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const Event& e : *events) {
      out.push_back({{"id", e.id}, {"time", isoTime(e.time_ms)}, {"queue_id", e.queue_id},
                     {"status", e.status}, {"account", e.account}, {"key_id", e.key_id},
                     {"campaign", e.campaign}, {"letter_id", e.letter_id}, {"from", e.from},
                     {"rcpt", e.rcpt}, {"code", e.code}, {"text", e.text}});
    }
    printJson(out);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{
      {"TIME", "QUEUE-ID", "STATUS", "ACCOUNT", "KEY", "FROM", "RCPT", "CODE", "TEXT"}};
  for (const Event& e : *events) {
    rows.push_back({isoTime(e.time_ms), e.queue_id, e.status, e.account, e.key_id, e.from, e.rcpt, e.code, e.text});
  }
  printTable(rows);
  if (events->empty()) std::cout << "(no events)\n";
  return 0;
}

}  // namespace mailgate::ctl
