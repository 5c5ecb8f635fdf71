// cmd_unsubscribe.cc — `mailgatectl unsubscribe-token verify TOKEN|URL`: checks
// an unsubscribe link's token as mailgate-web does (web_secret_file, both
// secrets, unsubscribe_token_lifetime) and prints what it names.
#include <iostream>

#include "ctl.h"
#include "mailgate/events.h"
#include "mailgate/limits.h"
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

}  // namespace mailgate::ctl
