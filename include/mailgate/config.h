// config.h — mailgate.conf: the typed settings shared by every daemon, and the
// parser that reads Postfix-style `name = value` files. Every parameter, its
// default and its meaning are documented in man/mailgate.conf.5.
#pragma once

#include <chrono>
#include <optional>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailgate/cidr.h"

namespace mailgate {

// A bad configuration: the message names file, line and the offending value,
// e.g. `mailgate.conf:12: unknown parameter "redis_sever"`.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a Redis server or a listener lives.
struct Endpoint {
  enum class Kind { Unix, Tcp };
  Kind kind = Kind::Unix;
  std::string path;  // Unix
  std::string host;  // Tcp
  uint16_t port = 0;  // Tcp
  std::string toString() const;
};

// redis_server = sentinel:NAME@host:port,host:port,...: the Redis master is
// the one these Sentinels name NAME (also written sentinel:host:port,.../NAME).
struct RedisSentinel {
  std::string master;
  std::vector<Endpoint> sentinels;  // TCP only
  std::string toString() const;     // "sentinel:NAME@host:port,host:port"
};

enum class RedisFailure { TempFail, Accept };
enum class AuthInternalError { Fail, Disconnect };
enum class EmptyFromMode { Mark, Reject, Rewrite };
enum class LocalSubmission { Pass, Reject };  // mail without an account
enum class LongLines { Encode, Reject };      // lines over 998 octets: refold/re-encode or refuse

struct Config {
  std::string path;  // file it was read from ("" for defaults)

  Endpoint redis_server;                       // unused when redis_sentinel is set
  std::optional<RedisSentinel> redis_sentinel;  // redis_server = sentinel:...
  std::string redis_sentinel_password;          // AUTH sent to the Sentinels
  std::string redis_password;
  int redis_db = 0;
  std::chrono::milliseconds redis_timeout{500};
  std::string redis_prefix;
  unsigned redis_pool_size = 8;

  Endpoint policy_listen;
  unsigned policy_workers = 4;
  std::chrono::milliseconds policy_idle_timeout{330000};
  std::chrono::milliseconds policy_request_timeout{10000};  // a request or line begun must end within it
  unsigned policy_max_connections = 1000;  // each of the policy and auth listeners
  Endpoint auth_listen;
  std::chrono::milliseconds auth_cache_ttl{5000};
  AuthInternalError auth_internal_error = AuthInternalError::Fail;
  unsigned auth_fail_limit = 10;
  std::chrono::seconds auth_fail_window{600};
  std::string milter_listen;  // libmilter socket spec
  unsigned socket_mode = 0660;
  std::string socket_group;
  std::string user = "mailgate";  // a daemon started as root switches to it; "root" = stay

  RedisFailure on_redis_failure = RedisFailure::TempFail;
  uint64_t events_maxlen = 1000000;
  uint64_t max_campaigns_per_day = 1000;  // per account; the rest are counted as "_other"
  int64_t campaign_stats_days = 35;
  uint64_t max_message_size = 50 * 1024 * 1024;
  uint64_t max_recipients = 1000;
  std::chrono::seconds queue_record_ttl{7 * 24 * 3600};

  std::vector<std::string> required_headers;     // canonical spelling, e.g. "Message-Id"
  std::vector<std::string> add_missing_headers;  // subset the milter may add: Date, Message-Id
  EmptyFromMode empty_from = EmptyFromMode::Mark;
  std::vector<std::string> sink_recipients;      // Mailbox::key() form
  bool strip_tag_headers = true;
  LocalSubmission local_submission = LocalSubmission::Pass;
  LongLines long_lines = LongLines::Encode;

  std::string dkim_default_domain;
  std::chrono::seconds dkim_expire{0};
  bool dkim_required = false;
  bool dkim_on_error_tempfail = true;  // dkim_on_error = tempfail | accept-unsigned

  std::string tracker_log = "/var/log/mail.log";  // "-" = stdin
  std::string tracker_name;                       // "" = the host name
  std::vector<std::string> tracker_syslog_names{"postfix*"};  // accepted Postfix syslog_name values
  // A recipient soft-bounced (soft_bounce.h) on this many distinct messages
  // within the window is suppressed; 0 in either disables.
  unsigned soft_bounce_limit = 3;
  std::chrono::milliseconds soft_bounce_window{7LL * 86400 * 1000};
  std::chrono::milliseconds webhook_timeout{10000};
  unsigned webhook_batch_size = 100;
  std::chrono::milliseconds webhook_retry_initial{1000};
  std::chrono::milliseconds webhook_retry_max{600000};
  std::chrono::milliseconds webhook_retry_for{86400000};
  uint64_t webhook_max_held = 50000;              // events in memory, all accounts together
  uint64_t webhook_max_held_per_account = 10000;  // the rest wait pending in Redis
  std::vector<Cidr> webhook_allow_networks;       // non-public networks webhooks may reach

  // redis_server as logs and tools show it: the endpoint or sentinel:NAME@...
  std::string redisServerString() const {
    return redis_sentinel ? redis_sentinel->toString() : redis_server.toString();
  }
};

// Reads and validates `path`. Throws ConfigError.
Config loadConfig(const std::string& path);

// Parses `text` as if read from `filename`. Throws ConfigError.
Config parseConfig(std::string_view text, const std::string& filename);

// Names of all parameters, in documentation order (for tests and tools).
std::vector<std::string> configParameterNames();

// Every parameter with its default value (as written in the file).
std::vector<std::pair<std::string, std::string>> configDefaults();

std::optional<EmptyFromMode> parseEmptyFromMode(std::string_view text);

// Parses `unix:/path` or `tcp:host:port` (Redis) / `inet:host:port` (listeners).
// Returns false on a malformed spec. `tcp_word` is "tcp" or "inet".
bool parseEndpoint(std::string_view spec, std::string_view tcp_word, Endpoint& out);

// Parses `sentinel:NAME@host:port,host:port,...` (or `sentinel:host:port,.../NAME`).
// Throws std::invalid_argument saying what is wrong.
RedisSentinel parseRedisSentinel(std::string_view spec);

}  // namespace mailgate
