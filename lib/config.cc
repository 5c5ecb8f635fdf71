// config.cc — mailgate.conf parser and validation. One table (kParams) holds
// every parameter with its default and its setter, so defaults and checks are
// written once; errors name file, line and the bad value.
#include "mailgate/config.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "mailgate/address.h"

namespace mailgate {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A setter throws std::invalid_argument with what a good value looks like.
using Setter = std::function<void(Config&, std::string_view)>;

struct Param {
  const char* name;
  const char* default_value;
  Setter set;
};

uint64_t parseUnsigned(std::string_view v, uint64_t max, const char* what) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n > max) {
    throw std::invalid_argument(what);
  }
  return n;
}

// "500ms", "5s", "2m", "1h", "1d"; a bare number is seconds (as in Postfix).
std::chrono::milliseconds parseDuration(std::string_view v) {
  const char* what = "expected a duration such as 500ms, 5s, 2m or 1h";
  size_t digits = 0;
  while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') ++digits;
  uint64_t n = parseUnsigned(v.substr(0, digits), 1000000000ULL, what);
  std::string_view unit = v.substr(digits);
  uint64_t ms;
  if (unit == "ms") ms = n;
  else if (unit.empty() || unit == "s") ms = n * 1000;
  else if (unit == "m") ms = n * 60 * 1000;
  else if (unit == "h") ms = n * 3600 * 1000;
  else if (unit == "d") ms = n * 86400 * 1000;
  else throw std::invalid_argument(what);
  return std::chrono::milliseconds(ms);
}

// "52428800", "50M", "512k", "1G" (powers of 1024).
uint64_t parseSize(std::string_view v) {
  const char* what = "expected a size in bytes such as 10485760, 512k, 50M or 1G";
  uint64_t mult = 1;
  if (!v.empty()) {
    char u = v.back();
    if (u == 'k' || u == 'K') mult = 1024;
    else if (u == 'm' || u == 'M') mult = 1024 * 1024;
    else if (u == 'g' || u == 'G') mult = 1024ULL * 1024 * 1024;
    if (mult != 1) v.remove_suffix(1);
  }
  return parseUnsigned(v, UINT64_MAX / (1024ULL * 1024 * 1024), what) * mult;
}

Endpoint parseEndpointOrThrow(std::string_view v, std::string_view tcp_word) {
  Endpoint e;
  if (!parseEndpoint(v, tcp_word, e)) {
    throw std::invalid_argument("expected unix:/path or " + std::string(tcp_word) + ":host:port");
  }
  return e;
}

// libmilter socket specs: unix:/path, local:/path, inet:port@host, inet6:port@host.
void checkMilterSpec(std::string_view v) {
  const char* what = "expected unix:/path or inet:port@host";
  if (v.starts_with("unix:/") || v.starts_with("local:/")) return;
  for (std::string_view word : {"inet:", "inet6:"}) {
    if (!v.starts_with(word)) continue;
    std::string_view rest = v.substr(word.size());
    size_t at = rest.find('@');
    parseUnsigned(rest.substr(0, at), 65535, what);
    if (at != std::string_view::npos && at + 1 == rest.size()) throw std::invalid_argument(what);
    return;
  }
  throw std::invalid_argument(what);
}

// "a, b c" -> {"a", "b", "c"}
std::vector<std::string> parseList(std::string_view v) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < v.size()) {
    size_t j = v.find_first_of(", \t", i);
    if (j == std::string_view::npos) j = v.size();
    if (j > i) out.emplace_back(v.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// Header names: letters, digits and '-'; compared case-insensitively.
std::vector<std::string> parseHeaderList(std::string_view v) {
  auto names = parseList(v);
  for (const auto& n : names) {
    if (n.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
      throw std::invalid_argument("\"" + n + "\" is not a header name");
    }
  }
  return names;
}

const std::vector<Param>& params() {
  static const std::vector<Param> kParams = {
      {"redis_server", "unix:/run/redis/redis-server.sock",
       [](Config& c, std::string_view v) {
         c.redis_sentinel.reset();
         if (v.starts_with("sentinel:")) c.redis_sentinel = parseRedisSentinel(v);
         else c.redis_server = parseEndpointOrThrow(v, "tcp");
       }},
      {"redis_sentinel_password", "", [](Config& c, std::string_view v) { c.redis_sentinel_password = v; }},
      {"redis_password", "", [](Config& c, std::string_view v) { c.redis_password = v; }},
      {"redis_db", "0",
       [](Config& c, std::string_view v) {
         c.redis_db = static_cast<int>(parseUnsigned(v, 65535, "expected a database number"));
       }},
      {"redis_timeout", "500ms",
       [](Config& c, std::string_view v) {
         c.redis_timeout = parseDuration(v);
         if (c.redis_timeout.count() == 0) throw std::invalid_argument("must be greater than 0");
       }},
      {"redis_prefix", "mg:",
       [](Config& c, std::string_view v) {
         if (v.find_first_of(" \t") != std::string_view::npos) {
           throw std::invalid_argument("must not contain blanks");
         }
         c.redis_prefix = v;
       }},
      {"redis_pool_size", "8",
       [](Config& c, std::string_view v) {
         c.redis_pool_size = static_cast<unsigned>(parseUnsigned(v, 1024, "expected 1 to 1024"));
         if (c.redis_pool_size == 0) throw std::invalid_argument("expected 1 to 1024");
       }},
      {"policy_listen", "unix:/var/spool/postfix/mailgate/policy",
       [](Config& c, std::string_view v) { c.policy_listen = parseEndpointOrThrow(v, "inet"); }},
      {"policy_workers", "4",
       [](Config& c, std::string_view v) {
         c.policy_workers = static_cast<unsigned>(parseUnsigned(v, 256, "expected 1 to 256"));
         if (c.policy_workers == 0) throw std::invalid_argument("expected 1 to 256");
       }},
      {"policy_idle_timeout", "330s",
       [](Config& c, std::string_view v) { c.policy_idle_timeout = parseDuration(v); }},
      {"policy_request_timeout", "10s",
       [](Config& c, std::string_view v) {
         c.policy_request_timeout = parseDuration(v);
         if (c.policy_request_timeout.count() == 0) throw std::invalid_argument("must be more than 0");
       }},
      {"policy_max_connections", "1000",
       [](Config& c, std::string_view v) {
         c.policy_max_connections = static_cast<unsigned>(parseUnsigned(v, 1000000, "expected 1 to 1000000"));
         if (c.policy_max_connections == 0) throw std::invalid_argument("expected 1 to 1000000");
       }},
      {"auth_listen", "unix:/var/spool/postfix/mailgate/auth",
       [](Config& c, std::string_view v) { c.auth_listen = parseEndpointOrThrow(v, "inet"); }},
      {"auth_cache_ttl", "5s",
       [](Config& c, std::string_view v) { c.auth_cache_ttl = parseDuration(v); }},
      {"auth_internal_error", "fail",
       [](Config& c, std::string_view v) {
         if (v == "fail") c.auth_internal_error = AuthInternalError::Fail;
         else if (v == "disconnect") c.auth_internal_error = AuthInternalError::Disconnect;
         else throw std::invalid_argument("expected fail or disconnect");
       }},
      {"auth_fail_limit", "10",
       [](Config& c, std::string_view v) {
         c.auth_fail_limit = static_cast<unsigned>(parseUnsigned(v, 1000000, "expected a number (0 = off)"));
       }},
      {"auth_fail_window", "10m",
       [](Config& c, std::string_view v) {
         c.auth_fail_window = std::chrono::duration_cast<std::chrono::seconds>(parseDuration(v));
         if (c.auth_fail_window.count() == 0) throw std::invalid_argument("must be at least 1s");
       }},
      {"milter_listen", "unix:/var/spool/postfix/mailgate/milter",
       [](Config& c, std::string_view v) {
         checkMilterSpec(v);
         c.milter_listen = v;
       }},
      {"socket_mode", "0660",
       [](Config& c, std::string_view v) {
         const char* what = "expected an octal mode such as 0660";
         unsigned mode = 0;
         auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), mode, 8);
         if (v.empty() || ec != std::errc() || p != v.data() + v.size() || mode > 0777) {
           throw std::invalid_argument(what);
         }
         c.socket_mode = mode;
       }},
      {"socket_group", "postfix", [](Config& c, std::string_view v) { c.socket_group = v; }},
      {"user", "mailgate",
       [](Config& c, std::string_view v) {
         if (v.empty() || v.find_first_of(" \t:/") != std::string_view::npos) {
           throw std::invalid_argument("expected a user name (root: do not switch)");
         }
         c.user = v;
       }},
      {"on_redis_failure", "tempfail",
       [](Config& c, std::string_view v) {
         if (v == "tempfail") c.on_redis_failure = RedisFailure::TempFail;
         else if (v == "accept") c.on_redis_failure = RedisFailure::Accept;
         else throw std::invalid_argument("expected tempfail or accept");
       }},
      {"events_maxlen", "1000000",
       [](Config& c, std::string_view v) {
         c.events_maxlen = parseUnsigned(v, UINT64_MAX, "expected a number of entries");
       }},
      {"max_campaigns_per_day", "1000",
       [](Config& c, std::string_view v) {
         c.max_campaigns_per_day = parseUnsigned(v, 1000000, "expected a number of campaigns (0 = none)");
       }},
      {"campaign_stats_days", "35",
       [](Config& c, std::string_view v) {
         c.campaign_stats_days = static_cast<int64_t>(parseUnsigned(v, 400, "expected 1 to 400 days"));
         if (c.campaign_stats_days == 0) throw std::invalid_argument("expected 1 to 400 days");
       }},
      {"max_message_size", "50M",
       [](Config& c, std::string_view v) { c.max_message_size = parseSize(v); }},
      {"max_recipients", "1000",
       [](Config& c, std::string_view v) {
         c.max_recipients = parseUnsigned(v, 1000000, "expected a number of recipients (0 = no limit)");
       }},
      {"required_headers", "From, To, Subject, Date, Message-Id, MIME-Version, Content-Type",
       [](Config& c, std::string_view v) { c.required_headers = parseHeaderList(v); }},
      {"add_missing_headers", "Date, Message-Id",
       [](Config& c, std::string_view v) {
         c.add_missing_headers = parseHeaderList(v);
         for (const auto& h : c.add_missing_headers) {
           if (toLower(h) != "date" && toLower(h) != "message-id") {
             throw std::invalid_argument("only Date and Message-Id can be added");
           }
         }
       }},
      {"empty_from", "mark",
       [](Config& c, std::string_view v) {
         auto mode = parseEmptyFromMode(v);
         if (!mode) throw std::invalid_argument("expected mark, reject or rewrite");
         c.empty_from = *mode;
       }},
      {"sink_recipients", "test@test.ru",
       [](Config& c, std::string_view v) {
         c.sink_recipients.clear();
         for (const auto& a : parseList(v)) {
           auto m = parseMailbox(a);
           if (!m) throw std::invalid_argument("\"" + a + "\" is not an address");
           c.sink_recipients.push_back(m->key());
         }
       }},
      {"strip_tag_headers", "yes",
       [](Config& c, std::string_view v) {
         if (v != "yes" && v != "no") throw std::invalid_argument("expected yes or no");
         c.strip_tag_headers = v == "yes";
       }},
      {"local_submission", "pass",
       [](Config& c, std::string_view v) {
         if (v == "pass") c.local_submission = LocalSubmission::Pass;
         else if (v == "reject") c.local_submission = LocalSubmission::Reject;
         else throw std::invalid_argument("expected pass or reject");
       }},
      {"long_lines", "encode",
       [](Config& c, std::string_view v) {
         if (v == "encode") c.long_lines = LongLines::Encode;
         else if (v == "reject") c.long_lines = LongLines::Reject;
         else throw std::invalid_argument("expected encode or reject");
       }},
      {"dkim_default_domain", "",
       [](Config& c, std::string_view v) {
         // Keys are stored under the A-label form (mailgatectl dkim).
         auto domain = v.empty() ? std::optional<std::string>("") : normalHostname(v);
         if (!domain) throw std::invalid_argument("expected a domain");
         c.dkim_default_domain = *domain;
       }},
      {"dkim_expire", "0",
       [](Config& c, std::string_view v) {
         c.dkim_expire = std::chrono::duration_cast<std::chrono::seconds>(parseDuration(v));
       }},
      {"dkim_required", "no",
       [](Config& c, std::string_view v) {
         if (v != "yes" && v != "no") throw std::invalid_argument("expected yes or no");
         c.dkim_required = v == "yes";
       }},
      {"dkim_on_error", "tempfail",
       [](Config& c, std::string_view v) {
         if (v != "tempfail" && v != "accept-unsigned") throw std::invalid_argument("expected tempfail or accept-unsigned");
         c.dkim_on_error_tempfail = v == "tempfail";
       }},
      {"queue_record_ttl", "7d",
       [](Config& c, std::string_view v) {
         c.queue_record_ttl = std::chrono::duration_cast<std::chrono::seconds>(parseDuration(v));
         if (c.queue_record_ttl.count() == 0) throw std::invalid_argument("must be at least 1s");
       }},
      {"tracker_log", "/var/log/mail.log",
       [](Config& c, std::string_view v) {
         if (v != "-" && !v.starts_with("/")) throw std::invalid_argument("expected an absolute path or -");
         c.tracker_log = v;
       }},
      {"tracker_name", "",
       [](Config& c, std::string_view v) {
         if (v.find_first_of(" \t{}") != std::string_view::npos) throw std::invalid_argument("expected a name");
         c.tracker_name = v;
       }},
      {"tracker_syslog_names", "postfix*",
       [](Config& c, std::string_view v) {
         // Postfix syslog_name values ("postfix", "postfix-out", "postfix/relay"), a trailing '*' a prefix.
         const char* what = "expected syslog_name values such as postfix, postfix-out or postfix*";
         c.tracker_syslog_names = parseList(v);
         if (c.tracker_syslog_names.empty()) throw std::invalid_argument(what);
         for (const auto& n : c.tracker_syslog_names) {
           std::string_view name = n;
           if (name.ends_with('*')) name.remove_suffix(1);
           bool ok = !name.empty() || n == "*";
           for (char ch : name) {
             ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                         std::strchr("._/-", ch) != nullptr);
           }
           if (!ok) throw std::invalid_argument(what);
         }
       }},
      {"soft_bounce_limit", "3",
       [](Config& c, std::string_view v) {
         c.soft_bounce_limit = static_cast<unsigned>(parseUnsigned(v, 1000, "expected 0 (off) to 1000 messages"));
       }},
      {"soft_bounce_window", "7d",
       [](Config& c, std::string_view v) {
         const char* what = "expected 0 (off) or a duration from 1s to 365d";
         c.soft_bounce_window = parseDuration(v);
         auto ms = c.soft_bounce_window.count();
         if ((ms != 0 && ms < 1000) || ms > 365LL * 86400 * 1000) throw std::invalid_argument(what);
       }},
      {"webhook_timeout", "10s",
       [](Config& c, std::string_view v) {
         c.webhook_timeout = parseDuration(v);
         if (c.webhook_timeout.count() < 100) throw std::invalid_argument("must be at least 100ms");
       }},
      {"webhook_batch_size", "100",
       [](Config& c, std::string_view v) {
         c.webhook_batch_size = static_cast<unsigned>(parseUnsigned(v, 10000, "expected 1..10000"));
         if (c.webhook_batch_size == 0) throw std::invalid_argument("expected 1..10000");
       }},
      {"webhook_retry_initial", "1s",
       [](Config& c, std::string_view v) {
         c.webhook_retry_initial = parseDuration(v);
         if (c.webhook_retry_initial.count() < 10) throw std::invalid_argument("must be at least 10ms");
       }},
      {"webhook_retry_max", "10m",
       [](Config& c, std::string_view v) { c.webhook_retry_max = parseDuration(v); }},
      {"webhook_retry_for", "24h",
       [](Config& c, std::string_view v) { c.webhook_retry_for = parseDuration(v); }},
      {"webhook_max_held", "50000",
       [](Config& c, std::string_view v) {
         c.webhook_max_held = parseUnsigned(v, 100000000, "expected 100..100000000");
         if (c.webhook_max_held < 100) throw std::invalid_argument("expected 100..100000000");
       }},
      {"webhook_max_held_per_account", "10000",
       [](Config& c, std::string_view v) {
         c.webhook_max_held_per_account = parseUnsigned(v, 100000000, "expected 100..100000000");
         if (c.webhook_max_held_per_account < 100) throw std::invalid_argument("expected 100..100000000");
       }},
      {"webhook_allow_networks", "",
       [](Config& c, std::string_view v) {
         c.webhook_allow_networks.clear();
         for (const auto& n : parseList(v)) {
           auto cidr = parseCidr(n);
           if (!cidr) throw std::invalid_argument("\"" + n + "\" is not a network (CIDR)");
           c.webhook_allow_networks.push_back(*cidr);
         }
       }},
  };
  return kParams;
}

const Param* findParam(std::string_view name) {
  for (const Param& p : params()) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

}  // namespace

std::optional<EmptyFromMode> parseEmptyFromMode(std::string_view v) {
  if (v == "mark") return EmptyFromMode::Mark;
  if (v == "reject") return EmptyFromMode::Reject;
  if (v == "rewrite") return EmptyFromMode::Rewrite;
  return std::nullopt;
}

std::string Endpoint::toString() const {
  if (kind == Kind::Unix) return "unix:" + path;
  return host + ":" + std::to_string(port);
}

bool parseEndpoint(std::string_view spec, std::string_view tcp_word, Endpoint& out) {
  if (spec.starts_with("unix:")) {
    std::string_view path = spec.substr(5);
    if (path.empty() || path.front() != '/') return false;
    out = Endpoint{Endpoint::Kind::Unix, std::string(path), "", 0};
    return true;
  }
  if (!spec.starts_with(tcp_word) || spec.size() <= tcp_word.size() || spec[tcp_word.size()] != ':') {
    return false;
  }
  std::string_view rest = spec.substr(tcp_word.size() + 1);
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = rest.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string_view port = rest.substr(colon + 1);
  unsigned n = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || n == 0 || n > 65535) {
    return false;
  }
  out = Endpoint{Endpoint::Kind::Tcp, "", std::string(host), static_cast<uint16_t>(n)};
  return true;
}

std::string RedisSentinel::toString() const {
  std::string out = "sentinel:" + master + "@";
  for (size_t i = 0; i < sentinels.size(); ++i) {
    if (i > 0) out += ",";
    out += sentinels[i].host.find(':') != std::string::npos ? "[" + sentinels[i].host + "]" : sentinels[i].host;
    out += ":" + std::to_string(sentinels[i].port);
  }
  return out;
}

RedisSentinel parseRedisSentinel(std::string_view spec) {
  const char* what = "expected sentinel:MASTERNAME@host:port,host:port,...";
  if (!spec.starts_with("sentinel:")) throw std::invalid_argument(what);
  std::string_view rest = spec.substr(9), hosts, name;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    name = rest.substr(0, at);
    hosts = rest.substr(at + 1);
  } else if (size_t slash = rest.rfind('/'); slash != std::string_view::npos) {
    hosts = rest.substr(0, slash);
    name = rest.substr(slash + 1);
  } else {
    throw std::invalid_argument(what);
  }
  if (name.empty() || name.find_first_of(" \t,@/") != std::string_view::npos) {
    throw std::invalid_argument(std::string(what) + " (no master name)");
  }
  RedisSentinel s{std::string(name), {}};
  for (const std::string& h : parseList(hosts)) {
    Endpoint e;
    if (!parseEndpoint("tcp:" + h, "tcp", e)) {
      throw std::invalid_argument("\"" + h + "\" is not host:port; " + what);
    }
    s.sentinels.push_back(std::move(e));
  }
  if (s.sentinels.empty()) throw std::invalid_argument(std::string(what) + " (no Sentinel)");
  return s;
}

std::vector<std::string> configParameterNames() {
  std::vector<std::string> names;
  for (const Param& p : params()) names.emplace_back(p.name);
  return names;
}

std::vector<std::pair<std::string, std::string>> configDefaults() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Param& p : params()) out.emplace_back(p.name, p.default_value);
  return out;
}

Config parseConfig(std::string_view text, const std::string& filename) {
  Config config;
  config.path = filename;
  for (const Param& p : params()) p.set(config, p.default_value);

  // Postfix syntax: a line starting with blanks continues the previous one.
  struct Entry {
    int line;
    std::string text;
  };
  std::vector<Entry> entries;
  int lineno = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++lineno;
    std::string_view t = trim(raw);
    if (t.empty() || t.front() == '#') continue;
    if (raw.front() == ' ' || raw.front() == '\t') {
      if (entries.empty()) {
        throw ConfigError(filename + ":" + std::to_string(lineno) +
                          ": continuation line without a parameter before it");
      }
      entries.back().text += ' ';
      entries.back().text += t;
      continue;
    }
    entries.push_back({lineno, std::string(t)});
  }

  std::map<std::string, int, std::less<>> seen;
  for (const Entry& e : entries) {
    std::string where = filename + ":" + std::to_string(e.line) + ": ";
    size_t eq = e.text.find('=');
    if (eq == std::string::npos) {
      throw ConfigError(where + "missing \"=\" in \"" + e.text + "\"; expected name = value");
    }
    std::string name(trim(std::string_view(e.text).substr(0, eq)));
    std::string value(trim(std::string_view(e.text).substr(eq + 1)));
    if (name.empty()) throw ConfigError(where + "missing parameter name before \"=\"");
    const Param* param = findParam(name);
    if (param == nullptr) throw ConfigError(where + "unknown parameter \"" + name + "\"");
    if (auto it = seen.find(name); it != seen.end()) {
      throw ConfigError(where + "duplicate parameter \"" + name + "\" (first set at line " +
                        std::to_string(it->second) + ")");
    }
    seen.emplace(name, e.line);
    try {
      param->set(config, value);
    } catch (const std::invalid_argument& bad) {
      throw ConfigError(where + "bad value \"" + value + "\" for " + name + ": " + bad.what());
    }
  }
  return config;
}

Config loadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
  return parseConfig(text.str(), path);
}

}  // namespace mailgate
