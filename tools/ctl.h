// ctl.h — shared pieces of mailgatectl: parsed arguments, error exit, output
// as plain tables or JSON, and access to the config and Redis.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/redis.h"

namespace mailgate::ctl {

struct Args {
  std::string config_path;
  bool json = false;
  unsigned count = 20;
  std::string default_sender;
  bool no_smtp = false, sandbox = false;
  std::vector<std::string> words;  // command words and positional arguments
};

[[noreturn]] void die(const std::string& message, int code = 1);
// Exits 2 with "usage: mailgatectl COMMAND" unless words has exactly n entries.
void expectWords(const Args& a, size_t n, const char* usage);

Config loadOrDie(const Args& a);
std::string isoTime(int64_t unix_ms);

// Prints rows as aligned columns (first row is the header), or `json` with --json.
void printTable(const std::vector<std::vector<std::string>>& rows);
void printJson(const nlohmann::json& json);

int cmdConfigCheck(const Args& a);
int cmdEvents(const Args& a);
int cmdAccount(const Args& a);
int cmdKey(const Args& a);
int cmdNet(const Args& a);

}  // namespace mailgate::ctl
