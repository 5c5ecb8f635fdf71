// config_test.cc — mailgate.conf parser: defaults, good files, and every kind
// of bad file (unknown name, bad value, duplicate, missing file) with the
// exact file:line message.
#include "mailgate/config.h"

#include <fstream>
#include <gtest/gtest.h>

using namespace mailgate;

namespace {

std::string errorOf(std::string_view text) {
  try {
    parseConfig(text, "mailgate.conf");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsMatchTheManPage) {
  Config c = parseConfig("", "empty.conf");
  EXPECT_EQ(c.redis_server.kind, Endpoint::Kind::Unix);
  EXPECT_EQ(c.redis_server.path, "/run/redis/redis-server.sock");
  EXPECT_EQ(c.redis_timeout.count(), 500);
  EXPECT_EQ(c.redis_prefix, "mg:");
  EXPECT_EQ(c.redis_db, 0);
  EXPECT_EQ(c.policy_listen.path, "/var/spool/postfix/mailgate/policy");
  EXPECT_EQ(c.milter_listen, "unix:/var/spool/postfix/mailgate/milter");
  EXPECT_EQ(c.on_redis_failure, RedisFailure::TempFail);
  EXPECT_EQ(c.socket_mode, 0660u);
  EXPECT_EQ(c.queue_record_ttl.count(), 7 * 86400);
  EXPECT_EQ(c.tracker_syslog_names, std::vector<std::string>{"postfix*"});
}

TEST(Config, ParsesValuesCommentsAndContinuations) {
  Config c = parseConfig(
      "# comment\n"
      "redis_server = tcp:127.0.0.1:6390\n"
      "redis_timeout=2s\r\n"
      "\n"
      "on_redis_failure = accept\n"
      "policy_listen =\n"
      "    inet:127.0.0.1:10040\n"
      "milter_listen = inet:8891@127.0.0.1\n"
      "socket_mode = 0666\n"
      "redis_password = se=cret with spaces\n",
      "x.conf");
  EXPECT_EQ(c.redis_server.kind, Endpoint::Kind::Tcp);
  EXPECT_EQ(c.redis_server.host, "127.0.0.1");
  EXPECT_EQ(c.redis_server.port, 6390);
  EXPECT_EQ(c.redis_timeout.count(), 2000);
  EXPECT_EQ(c.on_redis_failure, RedisFailure::Accept);
  EXPECT_EQ(c.policy_listen.kind, Endpoint::Kind::Tcp);
  EXPECT_EQ(c.policy_listen.port, 10040);
  EXPECT_EQ(c.milter_listen, "inet:8891@127.0.0.1");
  EXPECT_EQ(c.socket_mode, 0666u);
  EXPECT_EQ(c.redis_password, "se=cret with spaces");
}

TEST(Config, UnknownParameterNamesFileAndLine) {
  EXPECT_EQ(errorOf("redis_db = 1\n\nredis_sever = tcp:a:1\n"),
            "mailgate.conf:3: unknown parameter \"redis_sever\"");
}

TEST(Config, BadValuesNameTheValueAndWhatIsExpected) {
  EXPECT_EQ(errorOf("redis_timeout = fast\n"),
            "mailgate.conf:1: bad value \"fast\" for redis_timeout: expected a duration such as "
            "500ms, 5s, 2m or 1h");
  EXPECT_EQ(errorOf("on_redis_failure = maybe\n"),
            "mailgate.conf:1: bad value \"maybe\" for on_redis_failure: expected tempfail or accept");
  EXPECT_EQ(errorOf("redis_server = localhost:6379\n"),
            "mailgate.conf:1: bad value \"localhost:6379\" for redis_server: expected unix:/path or "
            "tcp:host:port");
  EXPECT_EQ(errorOf("policy_listen = inet:127.0.0.1:99999\n"),
            "mailgate.conf:1: bad value \"inet:127.0.0.1:99999\" for policy_listen: expected "
            "unix:/path or inet:host:port");
  EXPECT_EQ(errorOf("milter_listen = /tmp/x\n"),
            "mailgate.conf:1: bad value \"/tmp/x\" for milter_listen: expected unix:/path or "
            "inet:port@host");
  EXPECT_EQ(errorOf("socket_mode = 0999\n"),
            "mailgate.conf:1: bad value \"0999\" for socket_mode: expected an octal mode such as 0660");
  EXPECT_EQ(errorOf("redis_timeout = 0\n"),
            "mailgate.conf:1: bad value \"0\" for redis_timeout: must be greater than 0");
  EXPECT_EQ(errorOf("policy_workers = \n"),
            "mailgate.conf:1: bad value \"\" for policy_workers: expected 1 to 256");
  EXPECT_EQ(errorOf("tracker_log = mail.log\n"),
            "mailgate.conf:1: bad value \"mail.log\" for tracker_log: expected an absolute path or -");
  EXPECT_EQ(errorOf("webhook_batch_size = 0\n"),
            "mailgate.conf:1: bad value \"0\" for webhook_batch_size: expected 1..10000");
  EXPECT_EQ(errorOf("webhook_timeout = 10ms\n"),
            "mailgate.conf:1: bad value \"10ms\" for webhook_timeout: must be at least 100ms");
  EXPECT_EQ(errorOf("tracker_name = a{b}\n"),
            "mailgate.conf:1: bad value \"a{b}\" for tracker_name: expected a name");
  for (const char* bad : {"", "post*fix", "postfix[1]", "**"}) {
    EXPECT_EQ(errorOf(std::string("tracker_syslog_names = ") + bad + "\n"),
              std::string("mailgate.conf:1: bad value \"") + bad +
                  "\" for tracker_syslog_names: expected syslog_name values such as postfix, postfix-out or "
                  "postfix*")
        << bad;
  }
  EXPECT_EQ(parseConfig("tracker_syslog_names = postfix, postfix-out postfix/relay*\n", "x").tracker_syslog_names,
            (std::vector<std::string>{"postfix", "postfix-out", "postfix/relay*"}));
}

TEST(Config, DkimDefaultDomainIsStoredAsALabels) {
  EXPECT_EQ(parseConfig("dkim_default_domain = Bücher.Example\n", "x.conf").dkim_default_domain,
            "xn--bcher-kva.example");
  EXPECT_EQ(parseConfig("dkim_default_domain = Mail.Example\n", "x.conf").dkim_default_domain, "mail.example");
  EXPECT_EQ(errorOf("dkim_default_domain = \xcc\x81" "x.example\n"),
            "mailgate.conf:1: bad value \"\xcc\x81" "x.example\" for dkim_default_domain: expected a domain");
}

TEST(Config, DuplicateParameterNamesBothLines) {
  EXPECT_EQ(errorOf("redis_db = 1\nredis_db = 2\n"),
            "mailgate.conf:2: duplicate parameter \"redis_db\" (first set at line 1)");
}

TEST(Config, SyntaxErrors) {
  EXPECT_EQ(errorOf("redis_db 1\n"),
            "mailgate.conf:1: missing \"=\" in \"redis_db 1\"; expected name = value");
  EXPECT_EQ(errorOf("  redis_db = 1\n"),
            "mailgate.conf:1: continuation line without a parameter before it");
  EXPECT_EQ(errorOf("= 1\n"), "mailgate.conf:1: missing parameter name before \"=\"");
}

TEST(Config, MissingFile) {
  try {
    loadConfig("/nonexistent/mailgate.conf");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/mailgate.conf: cannot open: No such file or directory");
  }
}

TEST(Config, LoadsAFile) {
  std::string path = ::testing::TempDir() + "mg_config_test.conf";
  std::ofstream(path) << "redis_db = 3\n";
  EXPECT_EQ(loadConfig(path).redis_db, 3);
}

TEST(Config, ShippedConfigShowsEveryDefaultAndLoads) {
  std::string path = std::string(MG_SOURCE_DIR) + "/contrib/mailgate.conf";
  std::ifstream in(path);
  ASSERT_TRUE(in.good());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& [name, value] : configDefaults()) {
    std::string line = "\n#" + name + (value.empty() ? " =" : " = " + value) + "\n";
    EXPECT_NE(text.find(line), std::string::npos) << name << ": expected the line" << line;
  }
  EXPECT_NO_THROW(loadConfig(path));
}

TEST(Config, EveryParameterIsInTheManPage) {
  std::ifstream man(std::string(MG_SOURCE_DIR) + "/man/mailgate.conf.5");
  ASSERT_TRUE(man.good());
  std::string text((std::istreambuf_iterator<char>(man)), std::istreambuf_iterator<char>());
  for (const auto& name : configParameterNames()) {
    EXPECT_NE(text.find(".B " + name + "\n"), std::string::npos) << name << " is not documented";
  }
}

}  // namespace
