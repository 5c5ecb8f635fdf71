// admin.h — the writes behind mailgatectl: accounts, API keys and allowed
// networks. Every function checks its input and returns a one-line Error for
// unknown accounts, duplicates and bad values.
#pragma once

#include <string>
#include <vector>

#include "mailgate/redis.h"
#include "mailgate/result.h"
#include "mailgate/store.h"

namespace mailgate {

struct AccountView {
  std::string name, state, default_sender, created;
  std::vector<std::string> nets;
  size_t keys = 0;
};

struct KeyView {
  std::string id, account, created;
  bool smtp = true, sandbox = false;
};

struct NewKey {
  std::string key;  // shown once, never stored
  KeyView view;
};

// Account names: 1-64 of [A-Za-z0-9._-] (they appear in "ACCOUNT/KEYID").
bool validAccountName(std::string_view name);

class Admin {
 public:
  Admin(RedisConn& redis, const StoreKeys& keys) : redis_(redis), keys_(keys) {}

  Status addAccount(const std::string& name, const std::string& default_sender);
  // `assignment` is "state=active|blocked|deleted" or "default_sender=ADDR".
  Status setAccount(const std::string& name, const std::string& assignment);
  Result<AccountView> showAccount(const std::string& name);

  Result<NewKey> createKey(const std::string& account, bool smtp, bool sandbox);
  Result<std::vector<KeyView>> listKeys(const std::string& account);
  Result<KeyView> revokeKey(const std::string& key_id);

  // Returns the canonical CIDR text.
  Result<std::string> allowNet(const std::string& account, const std::string& cidr);
  Result<std::string> denyNet(const std::string& account, const std::string& cidr);

 private:
  Status requireAccount(const std::string& name);

  RedisConn& redis_;
  const StoreKeys& keys_;
};

}  // namespace mailgate
