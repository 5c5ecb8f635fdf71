// ctl.h — shared pieces of mailgatectl: parsed arguments, error exit, output
// as plain tables or JSON, and access to the config and Redis.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "mailgate/admin.h"
#include "mailgate/config.h"
#include "mailgate/limits.h"
#include "mailgate/redis.h"

namespace mailgate::ctl {

struct Args {
  std::string config_path;
  bool json = false;
  unsigned count = 20;
  std::string default_sender;
  bool no_smtp = false, sandbox = false;
  std::string status, key_id;  // --key: a key id (limit) or a key file (dkim import)
  std::string selector, algo;
  std::string group;  // dkim export --group
  std::string account, day, campaign;  // --account, --day, --campaign
  bool follow = false;
  bool wide = false;  // net allow --wide
  std::optional<bool> subdomains;
  std::vector<std::string> words;  // command words and positional arguments
};

[[noreturn]] void die(const std::string& message, int code = 1);
// Exits 2 with "usage: mailgatectl <text>".
[[noreturn]] void usage(const std::string& text);
// usage(text) unless words has exactly n entries.
void expectWords(const Args& a, size_t n, const char* text);

Config loadOrDie(const Args& a);

// Prints rows as aligned columns (first row is the header), or `json` with --json.
void printTable(const std::vector<std::vector<std::string>>& rows);
void printJson(const nlohmann::json& json);

// Config, Redis connection and Admin for the commands that need them.
struct Context {
  explicit Context(const Args& a)
      : config(loadOrDie(a)), redis(RedisSettings::fromConfig(config)), keys(config.redis_prefix),
        admin(redis, keys) {}
  Config config;
  RedisConn redis;
  StoreKeys keys;
  Admin admin;
};

template <class T>
T orDie(Result<T> r) {
  if (!r) die(r.error().message);
  return std::move(*r);
}

inline void orDie(const Status& s) {
  if (!s) die(s.error().message);
}

int cmdConfigCheck(const Args& a);
int cmdConfigDefaults(const Args& a);
int cmdEvents(const Args& a);
int cmdAccount(const Args& a);
int cmdKey(const Args& a);
int cmdNet(const Args& a);
int cmdDomain(const Args& a);
int cmdStoplist(const Args& a);
int cmdFbl(const Args& a);
int cmdComplaints(const Args& a);
int cmdBounced(const Args& a);
int cmdLimit(const Args& a);
int cmdErrors(const Args& a);
int cmdCampaign(const Args& a);
int cmdStats(const Args& a);
int cmdMessage(const Args& a);
int cmdDkim(const Args& a);
int cmdWebhook(const Args& a);
int cmdDkimExport(const Args& a, Context& ctx);
int cmdStatus(const Args& a);
int cmdUnsubscribeToken(const Args& a);
int cmdUnsubscribes(const Args& a);

}  // namespace mailgate::ctl
