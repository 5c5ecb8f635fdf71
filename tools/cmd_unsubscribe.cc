// cmd_unsubscribe.cc — `mailgatectl unsubscribe-token verify TOKEN|URL`: checks
// an unsubscribe link's token as mailgate-web does (web_secret_file, both
// secrets, unsubscribe_token_lifetime) and prints what it names; and
// `unsubscribes list|remove`: the unsubscribes mailgate-web recorded.
#include <iostream>

#include "ctl.h"
#include "mailgate/events.h"
#include "mailgate/limits.h"
#include "mailgate/unsubscribe_record.h"
#include "mailgate/unsubscribe_token.h"

namespace mailgate::ctl {

int cmdUnsubscribeToken(const Args& a) {
  const char* text = "unsubscribe-token verify TOKEN|URL";
  if (a.words.size() != 3 || a.words[1] != "verify") usage(text);
  Config config = loadOrDie(a);
  if (config.web_secrets.empty()) die("no web_secret_file in " + config.path);
  std::string_view token = a.words[2];
  if (size_t at = token.rfind("/u/"); at != std::string_view::npos) token.remove_prefix(at + 3);
  int64_t now = nowMillis() / 1000;
  TokenCheck check = verifyUnsubscribeToken(token, config.web_secrets, now, config.unsubscribe_token_lifetime);
  if (!check.ok()) die(tokenErrorText(check.error));
  const UnsubscribeToken& t = *check.token;
  if (a.json) {
    printJson({{"account", t.account}, {"recipient", t.recipient}, {"campaign", t.campaign},
               {"queue_id", t.queue_id}, {"issued", utcTimestamp(t.issued * 1000)}});
    return 0;
  }
  printTable({{"account:", t.account},
              {"recipient:", t.recipient},
              {"campaign:", t.campaign},
              {"queue id:", t.queue_id},
              {"issued:", utcTimestamp(t.issued * 1000)}});
  return 0;
}

int cmdUnsubscribes(const Args& a) {
  const char* text = "unsubscribes list NAME [ADDR] | unsubscribes remove NAME ADDR";
  bool list = a.words.size() >= 3 && a.words.size() <= 4 && a.words[1] == "list";
  bool remove = a.words.size() == 4 && a.words[1] == "remove";
  if (!list && !remove) usage(text);
  Context ctx(a);
  const std::string& account = a.words[2];
  std::string address = a.words.size() == 4 ? a.words[3] : "";
  if (remove) {
    long long n = orDie(removeUnsubscribes(ctx.redis, ctx.config, account, address));
    if (n == 0) die(address + " has no recorded unsubscribe in account \"" + account + "\"");
    if (a.json) printJson({{"account", account}, {"address", address}, {"removed", n}});
    else std::cout << "removed " << n << " unsubscribe" << (n == 1 ? "" : "s") << " of " << address << "\n";
    return 0;
  }
  auto entries = orDie(listUnsubscribes(ctx.redis, ctx.config, account, address));
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& u : entries)
      out.push_back({{"address", u.recipient}, {"campaign", u.campaign}, {"time", utcTimestamp(u.time_ms)},
                     {"queue_id", u.queue_id}});
    printJson(out);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"ADDRESS", "CAMPAIGN", "TIME", "QUEUEID"}};
  for (const auto& u : entries) rows.push_back({u.recipient, u.campaign, utcTimestamp(u.time_ms), u.queue_id});
  printTable(rows);
  return 0;
}

}  // namespace mailgate::ctl
