// cmd_policy.cc — `mailgatectl domain|stoplist|bounced|limit|errors|campaign ...`:
// the account data the envelope rules read, and the refusals they recorded.
#include <iostream>

#include "ctl.h"
#include "mailgate/events.h"

namespace mailgate::ctl {
namespace {

void done(const Args& a, const std::string& text, nlohmann::json json) {
  if (a.json) printJson(json);
  else std::cout << text << "\n";
}

void printList(const Args& a, const std::vector<std::string>& items, const char* header) {
  if (a.json) {
    printJson(items);
    return;
  }
  std::vector<std::vector<std::string>> rows{{header}};
  for (const auto& i : items) rows.push_back({i});
  printTable(rows);
}

}  // namespace

int cmdDomain(const Args& a) {
  const char* text = "domain add|set|remove NAME DOMAIN [--status S] [--subdomains] | domain list NAME";
  if (a.words.size() < 3) usage(text);
  const std::string &sub = a.words[1], &name = a.words[2];
  Context ctx(a);
  if (sub == "list") {
    if (a.words.size() != 3) usage(text);
    auto domains = orDie(ctx.admin.listDomains(name));
    if (a.json) {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [d, entry] : domains) out[d] = entry;
      printJson(out);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{{"DOMAIN", "STATUS"}};
    for (const auto& [d, entry] : domains) rows.push_back({d, entry});
    printTable(rows);
    return 0;
  }
  if (a.words.size() != 4) usage(text);
  const std::string& domain = a.words[3];
  if (sub == "add") {
    orDie(ctx.admin.addDomain(name, domain, a.status.empty() ? "verified" : a.status, a.subdomains.value_or(false)));
    done(a, "domain " + domain + " added to account " + name, {{"account", name}, {"domain", domain}});
  } else if (sub == "set") {
    if (a.status.empty() && !a.subdomains) usage("domain set NAME DOMAIN [--status S] [--subdomains|--no-subdomains]");
    orDie(ctx.admin.setDomain(name, domain, a.status, a.subdomains));
    done(a, "domain " + domain + " of account " + name + " updated", {{"account", name}, {"domain", domain}});
  } else if (sub == "remove") {
    orDie(ctx.admin.removeDomain(name, domain));
    done(a, "domain " + domain + " removed from account " + name, {{"account", name}, {"domain", domain}});
  } else {
    usage(text);
  }
  return 0;
}

int cmdStoplist(const Args& a) {
  const char* text = "stoplist add|remove NAME ADDR | stoplist list NAME";
  if (a.words.size() < 3) usage(text);
  const std::string &sub = a.words[1], &name = a.words[2];
  Context ctx(a);
  if (sub == "list" && a.words.size() == 3) {
    printList(a, orDie(ctx.admin.stoplistList(name)), "ADDRESS");
    return 0;
  }
  if (a.words.size() != 4) usage(text);
  if (sub == "add") {
    std::string addr = orDie(ctx.admin.stoplistAdd(name, a.words[3]));
    done(a, addr + " added to the stoplist of " + name, {{"account", name}, {"address", addr}});
  } else if (sub == "remove") {
    std::string addr = orDie(ctx.admin.stoplistRemove(name, a.words[3]));
    done(a, addr + " removed from the stoplist of " + name, {{"account", name}, {"address", addr}});
  } else {
    usage(text);
  }
  return 0;
}

int cmdBounced(const Args& a) {
  const char* text = "bounced list [ADDR] | bounced remove ADDR";
  if (a.words.size() < 2) usage(text);
  Context ctx(a);
  if (a.words[1] == "list" && a.words.size() <= 3) {
    auto entries = orDie(ctx.admin.bouncedList(a.words.size() == 3 ? a.words[2] : ""));
    if (a.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& e : entries) {
        out.push_back({{"address", e.address}, {"time", e.time_ms ? utcTimestamp(e.time_ms) : ""},
                       {"account", e.account}, {"queue_id", e.queue_id}, {"dsn", e.dsn}, {"reason", e.reason}});
      }
      printJson(out);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{{"ADDRESS", "TIME", "ACCOUNT", "QUEUE-ID", "DSN", "REASON"}};
    for (const auto& e : entries) {
      rows.push_back({e.address, e.time_ms ? utcTimestamp(e.time_ms) : "-", e.account, e.queue_id, e.dsn, e.reason});
    }
    printTable(rows);
    return 0;
  }
  if (a.words[1] == "remove" && a.words.size() == 3) {
    std::string addr = orDie(ctx.admin.bouncedRemove(a.words[2]));
    done(a, addr + " removed from the bounce lists", {{"address", addr}});
    return 0;
  }
  usage(text);
}

int cmdLimit(const Args& a) {
  const char* text = "limit set NAME [--key KEYID] rate=N/s daily=N rcpts=N size=N";
  if (a.words.size() < 4 || a.words[1] != "set") usage(text);
  Context ctx(a);
  orDie(ctx.admin.setLimit(a.words[2], a.key_id, {a.words.begin() + 3, a.words.end()}));
  done(a, "limits of " + a.words[2] + (a.key_id.empty() ? "" : " (key " + a.key_id + ")") + " updated",
       {{"account", a.words[2]}, {"updated", true}});
  return 0;
}

int cmdErrors(const Args& a) {
  expectWords(a, 2, "errors NAME [--last N]");
  Config c = loadOrDie(a);
  RedisConn redis(RedisSettings::fromConfig(c));
  auto errors = orDie(latestErrors(redis, c, a.words[1], a.count));
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : errors) {
      out.push_back({{"time", utcTimestamp(e.time_ms)}, {"queue_id", e.queue_id}, {"code", e.code}, {"text", e.text},
                     {"from", e.from}, {"rcpt", e.rcpt}});
    }
    printJson(out);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"TIME", "QUEUE-ID", "CODE", "TEXT", "FROM", "RCPT"}};
  for (const auto& e : errors) rows.push_back({utcTimestamp(e.time_ms), e.queue_id, e.code, e.text, e.from, e.rcpt});
  printTable(rows);
  return 0;
}

int cmdCampaign(const Args& a) {
  if (a.words.size() != 4 || (a.words[1] != "block" && a.words[1] != "unblock")) {
    usage("campaign block|unblock NAME CAMPAIGN");
  }
  Context ctx(a);
  bool block = a.words[1] == "block";
  orDie(block ? ctx.admin.blockCampaign(a.words[2], a.words[3]) : ctx.admin.unblockCampaign(a.words[2], a.words[3]));
  done(a, "campaign " + a.words[3] + " of " + a.words[2] + (block ? " blocked" : " unblocked"),
       {{"account", a.words[2]}, {"campaign", a.words[3]}, {"blocked", block}});
  return 0;
}

}  // namespace mailgate::ctl
