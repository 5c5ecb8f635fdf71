// mailgatectl.cc — mailgatectl(8), the admin tool: `config check` and
// `events`. Prints plain tables (JSON with --json); any error is one line on
// stderr and a non-zero exit.
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/daemon.h"
#include "mailgate/events.h"
#include "mailgate/redis.h"

using namespace mailgate;

namespace {

constexpr const char* kUsage =
    "usage: mailgatectl [-c config_file] [--json] COMMAND\n"
    "commands:\n"
    "  config check              validate the configuration file\n"
    "  events [--count N]        show the latest outcome events (default 20)\n";

struct Args {
  std::string config_path = kDefaultConfigPath;
  bool json = false;
  unsigned count = 20;
  std::vector<std::string> words;
};

[[noreturn]] void die(const std::string& message, int code = 1) {
  fprintf(stderr, "mailgatectl: %s\n", message.c_str());
  exit(code);
}

[[noreturn]] void usage() {
  fputs(kUsage, stderr);
  exit(2);
}

Args parseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(arg + " needs a value", 2);
      return argv[++i];
    };
    if (arg == "-c") a.config_path = value();
    else if (arg == "--json") a.json = true;
    else if (arg == "--count") {
      std::string v = value();
      char* end = nullptr;
      unsigned long n = strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n == 0 || n > 100000) die("--count: expected 1 to 100000, got \"" + v + "\"", 2);
      a.count = static_cast<unsigned>(n);
    } else if (arg == "-h" || arg == "--help") {
      fputs(kUsage, stdout);
      exit(0);
    } else if (!arg.empty() && arg[0] == '-') {
      die("unknown option " + arg, 2);
    } else {
      a.words.push_back(arg);
    }
  }
  return a;
}

Config loadOrDie(const std::string& path) {
  try {
    return loadConfig(path);
  } catch (const ConfigError& e) {
    die(e.what());
  }
}

std::string isoTime(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int cmdConfigCheck(const Args& a) {
  Config c = loadOrDie(a.config_path);
  if (a.json) std::cout << nlohmann::json{{"config", c.path}, {"valid", true}}.dump() << "\n";
  else std::cout << c.path << ": ok\n";
  return 0;
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
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

int cmdEvents(const Args& a) {
  Config c = loadOrDie(a.config_path);
  RedisConn redis(RedisSettings::fromConfig(c));
  auto events = latestEvents(redis, c, a.count);
  if (!events) die(events.error().message);
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const Event& e : *events) {
      out.push_back({{"id", e.id}, {"time", isoTime(e.time_ms)}, {"queue_id", e.queue_id},
                     {"status", e.status}, {"account", e.account}, {"key_id", e.key_id},
                     {"campaign", e.campaign}, {"letter_id", e.letter_id}, {"from", e.from},
                     {"rcpt", e.rcpt}, {"code", e.code}, {"text", e.text}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{
      {"TIME", "QUEUE-ID", "STATUS", "ACCOUNT", "KEY", "FROM", "RCPT", "CODE", "TEXT"}};
  auto dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  for (const Event& e : *events) {
    rows.push_back({isoTime(e.time_ms), dash(e.queue_id), dash(e.status), dash(e.account), dash(e.key_id),
                    dash(e.from), dash(e.rcpt), dash(e.code), dash(e.text)});
  }
  printTable(rows);
  if (events->empty()) std::cout << "(no events)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parseArgs(argc, argv);
  if (a.words == std::vector<std::string>{"config", "check"}) return cmdConfigCheck(a);
  if (a.words == std::vector<std::string>{"events"}) return cmdEvents(a);
  if (a.words.empty()) usage();
  std::string cmd;
  for (const auto& w : a.words) cmd += (cmd.empty() ? "" : " ") + w;
  die("unknown command \"" + cmd + "\" (see mailgatectl --help)", 2);
}
