// mailgatectl.cc — mailgatectl(8), the admin tool: parses the command line
// and dispatches to the command files (cmd_*.cc). Prints plain tables (JSON
// with --json); any error is one line on stderr and a non-zero exit.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "ctl.h"
#include "mailgate/daemon.h"
#include "mailgate/events.h"

namespace mailgate::ctl {
namespace {

constexpr const char* kUsage =
    "usage: mailgatectl [-c config_file] [--json] COMMAND\n"
    "commands:\n"
    "  config check                                validate the configuration file\n"
    "  config defaults                             every parameter with its default\n"
    "  events [--count N] [--account NAME] [--follow]   latest outcome events (default 20)\n"
    "  message QUEUEID                             everything recorded about one message\n"
    "  stats NAME [--day YYYY-MM-DD] [--campaign C]   counts by status\n"
    "  account add NAME [--default-sender ADDR]    create an account\n"
    "  account set NAME key=value                  state=active|blocked|deleted, default_sender=ADDR,\n"
    "                                              unsubscribe=off|header|one-click, unsubscribe_scope=account|campaign\n"
    "  account show NAME                           show an account\n"
    "  key create NAME [--no-smtp] [--sandbox]     create an API key (printed once)\n"
    "  key list NAME                               list an account's keys\n"
    "  key revoke KEYID                            revoke a key\n"
    "  net allow NAME CIDR [--wide]                let NAME send from CIDR without AUTH\n"
    "  net deny NAME CIDR                          remove an allowed network\n"
    "  domain add NAME DOMAIN [--status S] [--subdomains]   add a sending domain\n"
    "  domain set NAME DOMAIN [--status S] [--subdomains|--no-subdomains]\n"
    "  domain remove NAME DOMAIN | domain list NAME\n"
    "  stoplist add|remove NAME ADDR | stoplist list NAME\n"
    "  fbl < MESSAGE                               record a feedback-loop (ARF) report (pipe transport)\n"
    "  complaints list NAME                        an account's complaints, newest first\n"
    "  unsubscribes list NAME [ADDR] | unsubscribes remove NAME ADDR   one-click unsubscribes (remove: resubscribe)\n"
    "  bounced list [ADDR] | bounced remove ADDR   the bounce list (hard, persistent soft)\n"
    "  limit set NAME [--key KEYID] rate=N/s|N/m|N/h daily=N rcpts=N size=N\n"
    "  errors NAME [--last N]                      an account's latest refusals\n"
    "  campaign block|unblock NAME CAMPAIGN        stop or resume a campaign\n"
    "  dkim generate DOMAIN [--selector S] [--algo rsa2048|ed25519] [--account NAME]\n"
    "  dkim import DOMAIN --selector S --key FILE [--account NAME]\n"
    "  dkim list [DOMAIN] | dkim remove DOMAIN [--selector S] | dkim dns DOMAIN\n"
    "  dkim export DIR [--group G]                 key files for Exim's DKIM signing (G: Debian-exim)\n"
    "  webhook set NAME URL                        set the webhook (prints a new secret)\n"
    "  webhook show|remove|test NAME               show, remove or send a signed test event\n"
    "  webhook failures NAME [--count N]           events given up after webhook_retry_for\n"
    "  status                                      daemons reachable, Redis latency, backlogs\n"
    "  unsubscribe-token verify TOKEN|URL          what an unsubscribe link names, or why it is refused\n";

Args parseArgs(int argc, char** argv) {
  Args a;
  a.config_path = kDefaultConfigPath;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(arg + " needs a value", 2);
      return argv[++i];
    };
    if (arg == "-c") a.config_path = value();
    else if (arg == "--json") a.json = true;
    else if (arg == "--default-sender") a.default_sender = value();
    else if (arg == "--no-smtp") a.no_smtp = true;
    else if (arg == "--sandbox") a.sandbox = true;
    else if (arg == "--status") a.status = value();
    else if (arg == "--subdomains") a.subdomains = true;
    else if (arg == "--no-subdomains") a.subdomains = false;
    else if (arg == "--key") a.key_id = value();
    else if (arg == "--account") a.account = value();
    else if (arg == "--selector") a.selector = value();
    else if (arg == "--algo") a.algo = value();
    else if (arg == "--group") a.group = value();
    else if (arg == "--day") a.day = value();
    else if (arg == "--campaign") a.campaign = value();
    else if (arg == "--follow") a.follow = true;
    else if (arg == "--wide") a.wide = true;
    else if (arg == "--count" || arg == "--last") {
      std::string v = value();
      char* end = nullptr;
      unsigned long n = strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n == 0 || n > 100000) die("--count: expected 1 to 100000, got \"" + v + "\"", 2);
      a.count = static_cast<unsigned>(n);
    } else if (arg == "-h" || arg == "--help") {
      fputs(kUsage, stdout);
      exit(0);
    } else if (arg.size() > 1 && arg[0] == '-') {
      die("unknown option " + arg, 2);
    } else {
      a.words.push_back(arg);
    }
  }
  return a;
}

}  // namespace

[[noreturn]] void die(const std::string& message, int code) {
  fprintf(stderr, "mailgatectl: %s\n", message.c_str());
  exit(code);
}

void usage(const std::string& text) { die("usage: mailgatectl " + text, 2); }

void expectWords(const Args& a, size_t n, const char* text) {
  if (a.words.size() != n) usage(text);
}

Config loadOrDie(const Args& a) {
  try {
    return loadConfig(a.config_path);
  } catch (const ConfigError& e) {
    die(e.what());
  }
}

void printTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i].empty() ? "-" : row[i];
      size_t shown = row[i].empty() ? 1 : row[i].size();
      if (i + 1 < row.size()) line += std::string(width[i] - std::min(width[i], shown) + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

void printJson(const nlohmann::json& json) { std::cout << jsonText(json, 2) << "\n"; }

}  // namespace mailgate::ctl

int main(int argc, char** argv) {
  using namespace mailgate::ctl;
  Args a = parseArgs(argc, argv);
  if (a.words.empty()) {
    fputs(kUsage, stderr);
    return 2;
  }
  const std::string& cmd = a.words[0];
  if (cmd == "config" && a.words.size() == 2 && a.words[1] == "check") return cmdConfigCheck(a);
  if (cmd == "config" && a.words.size() == 2 && a.words[1] == "defaults") return cmdConfigDefaults(a);
  if (cmd == "events") return cmdEvents(a);
  if (cmd == "account") return cmdAccount(a);
  if (cmd == "key") return cmdKey(a);
  if (cmd == "net") return cmdNet(a);
  if (cmd == "domain") return cmdDomain(a);
  if (cmd == "stoplist") return cmdStoplist(a);
  if (cmd == "fbl") return cmdFbl(a);
  if (cmd == "complaints") return cmdComplaints(a);
  if (cmd == "bounced") return cmdBounced(a);
  if (cmd == "limit") return cmdLimit(a);
  if (cmd == "errors") return cmdErrors(a);
  if (cmd == "campaign") return cmdCampaign(a);
  if (cmd == "stats") return cmdStats(a);
  if (cmd == "message") return cmdMessage(a);
  if (cmd == "dkim") return cmdDkim(a);
  if (cmd == "webhook") return cmdWebhook(a);
  if (cmd == "status") return cmdStatus(a);
  if (cmd == "unsubscribe-token") return cmdUnsubscribeToken(a);
  if (cmd == "unsubscribes") return cmdUnsubscribes(a);
  std::string all;
  for (const auto& w : a.words) all += (all.empty() ? "" : " ") + w;
  die("unknown command \"" + all + "\" (see mailgatectl --help)", 2);
}
