// admin_webhook.cc — the webhook part of Admin (mailgatectl webhook ...):
// an account's URL and signing secret, and its dead-lettered events.
#include "mailgate/admin.h"

#include "mailgate/crypto.h"
#include "mailgate/webhook.h"

namespace mailgate {

Result<std::string> Admin::setWebhook(const std::string& account, const std::string& url) {
  if (!validWebhookUrl(url)) {
    return Error{Error::Kind::Invalid, "bad webhook URL \"" + url + "\": expected https://host/path or http://..."};
  }
  if (Status s = requireAccount(account); !s) return s.error();
  std::string secret = "whsec_" + base64UrlEncode(randomBytes(24));
  auto r = redis_.command({"HSET", keys_.account(account), "webhook_url", url, "webhook_secret", secret});
  if (!r) return r.error();
  return secret;
}

Status Admin::removeWebhook(const std::string& account) {
  if (Status s = requireAccount(account); !s) return s;
  auto r = redis_.command({"HDEL", keys_.account(account), "webhook_url", "webhook_secret"});
  if (!r) return r.error();
  if ((*r)->integer == 0) return Error{Error::Kind::Invalid, "account " + account + " has no webhook"};
  return okStatus();
}

Result<WebhookView> Admin::showWebhook(const std::string& account) {
  if (Status s = requireAccount(account); !s) return s.error();
  auto r = redis_.pipeline(
      {{"HMGET", keys_.account(account), "webhook_url", "webhook_secret"}, {"XLEN", keys_.webhookDead(account)}});
  if (!r) return r.error();
  WebhookView v{account, replyString((*r)[0]->element[0]), replyString((*r)[0]->element[1]),
                static_cast<uint64_t>((*r)[1]->integer)};
  if (v.url.empty()) return Error{Error::Kind::Invalid, "account " + account + " has no webhook"};
  return v;
}

Result<std::vector<WebhookFailure>> Admin::webhookFailures(const std::string& account, unsigned count) {
  if (Status s = requireAccount(account); !s) return s.error();
  auto r = redis_.command({"XREVRANGE", keys_.webhookDead(account), "+", "-", "COUNT", std::to_string(count)});
  if (!r) return r.error();
  std::vector<WebhookFailure> out;
  for (size_t i = 0; i < (*r)->elements; ++i) {
    const redisReply* entry = (*r)->element[i];
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
    const redisReply* fields = entry->element[1];
    out.push_back({replyString(entry->element[0]), std::strtoll(hashField(fields, "time").c_str(), nullptr, 10),
                   static_cast<unsigned>(std::strtoul(hashField(fields, "attempts").c_str(), nullptr, 10)),
                   hashField(fields, "error"), hashField(fields, "event")});
  }
  return out;
}

}  // namespace mailgate
