// cmd_dkim.cc — `mailgatectl dkim generate|import|list|remove|dns|export`: DKIM
// keys in Redis and the DNS records to publish for them.
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "ctl.h"
#include "mailgate/dkim_keys.h"

namespace mailgate::ctl {
namespace {

[[noreturn]] void dkimUsage() {
  usage("dkim generate DOMAIN [--selector S] [--algo rsa2048|ed25519] [--account NAME] | "
        "dkim import DOMAIN --selector S --key FILE [--account NAME] | dkim list [DOMAIN] | "
        "dkim remove DOMAIN [--selector S] | dkim dns DOMAIN | dkim export DIR [--group G]");
}

// "rsa202611" / "ed202611": a new selector each month, one per algorithm.
std::string defaultSelector(std::string_view algo) {
  time_t t = time(nullptr);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[16];
  strftime(buf, sizeof buf, "%Y%m", &tm);
  return (algo == "ed25519" ? "ed" : "rsa") + std::string(buf);
}

void printRecords(const Args& a, const std::vector<DkimEntry>& entries) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : entries) {
    auto key = orDie(readDkimKey(e.pem));
    std::string txt = orDie(dkimTxtValue(key));
    if (a.json) out.push_back({{"domain", e.domain}, {"selector", e.selector}, {"txt", txt}});
    else std::cout << dkimZoneRecord(e.selector, e.domain, txt) << "\n";
  }
  if (a.json) printJson(out);
}

}  // namespace

int cmdDkim(const Args& a) {
  if (a.words.size() < 2) dkimUsage();
  const std::string& sub = a.words[1];
  Context ctx(a);
  if (sub == "list") {
    if (a.words.size() > 3) dkimUsage();
    auto entries = orDie(ctx.admin.listDkimKeys(a.words.size() == 3 ? a.words[2] : ""));
    if (a.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& e : entries) {
        out.push_back({{"domain", e.domain}, {"selector", e.selector}, {"algo", e.algo}, {"bits", e.bits},
                       {"account", e.account}, {"created", e.created}});
      }
      printJson(out);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{{"DOMAIN", "SELECTOR", "ALGO", "BITS", "ACCOUNT", "CREATED"}};
    for (const auto& e : entries) {
      rows.push_back({e.domain, e.selector, e.algo, std::to_string(e.bits), e.account, e.created});
    }
    printTable(rows);
    return 0;
  }
  if (a.words.size() != 3) dkimUsage();
  if (sub == "export") return cmdDkimExport(a, ctx);
  const std::string& domain = a.words[2];
  if (sub == "generate" || sub == "import") {
    DkimKey key;
    std::string selector = a.selector;
    if (sub == "generate") {
      std::string algo = a.algo.empty() ? "rsa2048" : a.algo;
      key = orDie(generateDkimKey(algo));
      if (selector.empty()) selector = defaultSelector(algo);
    } else {
      if (selector.empty() || a.key_id.empty()) dkimUsage();
      std::ifstream in(a.key_id);
      if (!in) die(a.key_id + ": cannot open");
      std::stringstream pem;
      pem << in.rdbuf();
      key = orDie(readDkimKey(pem.str()));
    }
    orDie(ctx.admin.putDkimKey(domain, selector, key, a.account));
    auto stored = orDie(ctx.admin.listDkimKeys(domain));
    std::erase_if(stored, [&](const DkimEntry& e) { return e.selector != selector; });
    if (stored.empty()) die("DKIM key " + selector + " of " + domain + " was removed while it was being stored");
    if (!a.json) {
      std::cout << "DKIM key " << dkimAlgoName(key.algo) << " (" << key.bits << " bits) stored for " << stored[0].domain
                << ", selector " << selector << "; publish:\n";
    }
    printRecords(a, stored);
    return 0;
  }
  if (sub == "remove") {
    orDie(ctx.admin.removeDkimKey(domain, a.selector));
    if (a.json) printJson({{"domain", domain}, {"selector", a.selector}, {"removed", true}});
    else std::cout << "DKIM key" << (a.selector.empty() ? "s of " : " " + a.selector + " of ") << domain << " removed\n";
    return 0;
  }
  if (sub == "dns") {
    printRecords(a, orDie(ctx.admin.listDkimKeys(domain)));
    return 0;
  }
  dkimUsage();
}

}  // namespace mailgate::ctl
