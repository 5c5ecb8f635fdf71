// cmd_accounts.cc — `mailgatectl account|key|net ...`: accounts, API keys and
// allowed networks, on top of lib/admin.cc.
#include <iostream>

#include "ctl.h"
#include "mailgate/admin.h"

namespace mailgate::ctl {
namespace {

nlohmann::json keyJson(const KeyView& k) {
  return {{"id", k.id}, {"account", k.account}, {"smtp", k.smtp}, {"sandbox", k.sandbox}, {"created", k.created}};
}

}  // namespace

int cmdAccount(const Args& a) {
  const char* text = "account add NAME [--default-sender ADDR] | account set NAME key=value | account show NAME";
  if (a.words.size() < 3) usage(text);
  const std::string& sub = a.words[1];
  const std::string& name = a.words[2];
  Context ctx(a);
  if (sub == "add") {
    expectWords(a, 3, "account add NAME [--default-sender ADDR]");
    orDie(ctx.admin.addAccount(name, a.default_sender));
    if (a.json) printJson({{"account", name}, {"created", true}});
    else std::cout << "account " << name << " created\n";
    return 0;
  }
  if (sub == "set") {
    if (a.words.size() < 4) usage("account set NAME key=value...");
    orDie(ctx.admin.setAccount(name, {a.words.begin() + 3, a.words.end()}));
    if (!a.json) std::cout << "account " << name << " updated\n";
    else printJson({{"account", name}, {"updated", true}});
    return 0;
  }
  if (sub == "show") {
    expectWords(a, 3, "account show NAME");
    AccountView v = orDie(ctx.admin.showAccount(name));
    if (a.json) {
      printJson({{"account", v.name}, {"state", v.state}, {"default_sender", v.default_sender},
                 {"created", v.created}, {"keys", v.keys}, {"nets", v.nets}, {"unsubscribe", v.unsubscribe},
                 {"unsubscribe_scope", v.unsubscribe_scope}});
      return 0;
    }
    std::string nets;
    for (const auto& n : v.nets) nets += (nets.empty() ? "" : ", ") + n;
    printTable({{"account:", v.name},
                {"state:", v.state},
                {"default sender:", v.default_sender},
                {"created:", v.created},
                {"keys:", std::to_string(v.keys)},
                {"allowed networks:", nets},
                {"unsubscribe:", v.unsubscribe + " (scope " + v.unsubscribe_scope + ")"}});
    return 0;
  }
  usage(text);
}

int cmdKey(const Args& a) {
  const char* text = "key create NAME [--no-smtp] [--sandbox] | key list NAME | key revoke KEYID";
  if (a.words.size() != 3) usage(text);
  const std::string& sub = a.words[1];
  Context ctx(a);
  if (sub == "create") {
    NewKey k = orDie(ctx.admin.createKey(a.words[2], !a.no_smtp, a.sandbox));
    if (a.json) {
      nlohmann::json j = keyJson(k.view);
      j["key"] = k.key;
      printJson(j);
    } else {
      std::cout << "key id: " << k.view.id << "\napi key: " << k.key
                << "\n(the key is shown only now; mailgate stores only its SHA-256)\n";
    }
    return 0;
  }
  if (sub == "list") {
    std::vector<KeyView> keys = orDie(ctx.admin.listKeys(a.words[2]));
    if (a.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& k : keys) out.push_back(keyJson(k));
      printJson(out);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{{"KEY-ID", "SMTP", "SANDBOX", "CREATED"}};
    for (const auto& k : keys) rows.push_back({k.id, k.smtp ? "yes" : "no", k.sandbox ? "yes" : "no", k.created});
    printTable(rows);
    return 0;
  }
  if (sub == "revoke") {
    KeyView k = orDie(ctx.admin.revokeKey(a.words[2]));
    if (a.json) printJson({{"id", k.id}, {"account", k.account}, {"revoked", true}});
    else std::cout << "key " << k.id << " of account " << k.account << " revoked\n";
    return 0;
  }
  usage(text);
}

int cmdNet(const Args& a) {
  const char* text = "net allow NAME CIDR [--wide] | net deny NAME CIDR";
  if (a.words.size() != 4 || (a.words[1] != "allow" && a.words[1] != "deny")) {
    usage(text);
  }
  Context ctx(a);
  bool allow = a.words[1] == "allow";
  std::string net = orDie(allow ? ctx.admin.allowNet(a.words[2], a.words[3], a.wide) : ctx.admin.denyNet(a.words[2], a.words[3]));
  if (a.json) printJson({{"account", a.words[2]}, {"net", net}, {"allowed", allow}});
  else std::cout << "account " << a.words[2] << (allow ? " may send from " : " may no longer send from ") << net << "\n";
  return 0;
}

}  // namespace mailgate::ctl
