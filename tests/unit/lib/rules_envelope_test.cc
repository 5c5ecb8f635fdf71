// rules_envelope_test.cc — golden tests of the envelope rules, as Postfix
// does with smtpd_check.in/.ref: tests/golden/policy/*.in describe accounts
// and requests, *.ref hold the exact replies. Plus a few direct cases.
#include "mailgate/rules_envelope.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>

#include "mailgate/address.h"

using namespace mailgate;

namespace {

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// Runs one .in file; returns one output line per request.
std::string runGolden(const std::filesystem::path& path) {
  Config config = parseConfig("max_message_size = 1000\nmax_recipients = 3\n", "golden.conf");
  AccountPolicy account;
  uint64_t rcpts_before = 0;
  std::ifstream in(path);
  std::string line, out;
  while (std::getline(in, line)) {
    auto w = words(line);
    if (w.empty() || w[0][0] == '#') continue;
    if (w[0] == "account") {  // new account fields; domains and address sets stay
      AccountPolicy next;
      next.name = "acme";
      next.domains = std::move(account.domains);
      next.stoplist = std::move(account.stoplist);
      next.bounced = std::move(account.bounced);
      account = std::move(next);
      for (size_t i = 1; i < w.size(); ++i) {
        size_t eq = w[i].find('=');
        account.applyField(w[i].substr(0, eq), w[i].substr(eq + 1));
      }
    } else if (w[0] == "domain") {
      account.domains[w[1]] = *parseDomainEntry(w[2]);
    } else if (w[0] == "stop" || w[0] == "bounced") {
      // Redis holds normalised addresses; the loader reports which forms are members.
      (w[0] == "stop" ? account.stoplist : account.bounced).insert(parseMailbox(w[1])->key());
    } else if (w[0] == "rcpts_before") {
      rcpts_before = std::stoull(w[1]);
    } else if (w[0] == "request") {
      PolicyRequest req;
      req.attrs["request"] = "smtpd_access_policy";
      for (size_t i = 1; i < w.size(); ++i) {
        size_t eq = w[i].find('=');
        req.attrs[w[i].substr(0, eq)] = w[i].substr(eq + 1);
      }
      Verdict v = checkEnvelope(req, account, config, rcpts_before);
      out += v.action == Action::Dunno ? "DUNNO" : v.reply;
      if (!v.rule.empty()) out += " rule=" + v.rule;
      out += "\n";
    } else {
      ADD_FAILURE() << path << ": unknown line: " << line;
    }
  }
  return out;
}

TEST(RulesEnvelope, Golden) {
  std::filesystem::path dir = std::filesystem::path(MG_SOURCE_DIR) / "tests/golden/policy";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".in") continue;
    ++files;
    std::filesystem::path ref = entry.path();
    ref.replace_extension(".ref");
    std::ifstream r(ref);
    std::stringstream expected;
    expected << r.rdbuf();
    EXPECT_EQ(runGolden(entry.path()), expected.str()) << entry.path();
  }
  EXPECT_GE(files, 4);
}

TEST(RulesEnvelope, DomainCoverageNeedsTheSubdomainsFlag) {
  AccountPolicy a;
  a.domains["example.com"] = DomainEntry{DomainStatus::Verified, false};
  EXPECT_EQ(checkSender("x@news.example.com", a).reply, "550 5.7.1 error/sender/unknown");
  a.domains["example.com"].subdomains = true;
  EXPECT_EQ(checkSender("x@news.example.com", a).action, Action::Dunno);
  // The nearest entry with a flag wins over a farther one.
  a.domains["shop.example.com"] = DomainEntry{DomainStatus::Prohibited, true};
  EXPECT_EQ(checkSender("x@a.shop.example.com", a).reply, "550 5.7.1 error/sender/prohibited");
}

}  // namespace
