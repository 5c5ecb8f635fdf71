// events_test.cc — event encoding (XADD, q:<queueid>) and decoding of
// stream entries, without Redis.
#include "mailgate/events.h"

#include <algorithm>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace mailgate;

TEST(Events, SplitsAuthUser) {
  EXPECT_EQ(splitAuthUser("acme/k7f3"), (std::pair<std::string, std::string>{"acme", "k7f3"}));
  EXPECT_EQ(splitAuthUser("acme"), (std::pair<std::string, std::string>{"acme", ""}));
  EXPECT_EQ(splitAuthUser(""), (std::pair<std::string, std::string>{"", ""}));
}

TEST(Events, XaddCommandHasMaxlenAndAllFields) {
  Config c = parseConfig("redis_prefix = t:\nevents_maxlen = 500\n", "x");
  Event e;
  e.time_ms = 1700000000123;
  e.queue_id = "4ABC";
  e.status = "accepted";
  e.from = "a@x";
  Command cmd = xaddCommand(c, e);
  ASSERT_GE(cmd.size(), 6u);
  EXPECT_EQ(cmd[0], "XADD");
  EXPECT_EQ(cmd[1], "t:events");
  EXPECT_EQ(cmd[2], "MAXLEN");
  EXPECT_EQ(cmd[3], "~");
  EXPECT_EQ(cmd[4], "500");
  EXPECT_EQ(cmd[5], "*");
  EXPECT_EQ((cmd.size() - 6) % 2, 0u);
  auto field = [&](const std::string& name) {
    for (size_t i = 6; i + 1 < cmd.size(); i += 2) {
      if (cmd[i] == name) return cmd[i + 1];
    }
    return std::string("<absent>");
  };
  EXPECT_EQ(field("time"), "1700000000123");
  EXPECT_EQ(field("qid"), "4ABC");
  EXPECT_EQ(field("status"), "accepted");
  EXPECT_EQ(field("from"), "a@x");
}

TEST(Events, JsonTextReplacesInvalidUtf8) {
  // A sender address or remote reply with invalid UTF-8 must not make the
  // record (errors list, bounce info, webhook) throw.
  EXPECT_EQ(jsonText({{"from", "a\xff@example.org"}}), "{\"from\":\"a\xef\xbf\xbd@example.org\"}");
  EXPECT_EQ(jsonText({{"k", 1}}, 2), "{\n  \"k\": 1\n}");
}

TEST(Events, QueueRecordExpires) {
  Config c = parseConfig("queue_record_ttl = 1d\n", "x");
  QueueRecord r;
  r.queue_id = "4ABC";
  r.account = "acme";
  auto cmds = queueRecordCommands(c, r);
  ASSERT_EQ(cmds.size(), 3u);
  // A reused short queue id starts afresh: no delivery statuses of the old message.
  EXPECT_EQ(cmds[0], (Command{"DEL", "mg:q:4ABC"}));
  EXPECT_EQ(cmds[1][0], "HSET");
  EXPECT_EQ(cmds[1][1], "mg:q:4ABC");
  EXPECT_EQ(cmds[2], (Command{"EXPIRE", "mg:q:4ABC", "86400"}));
}

TEST(Events, QueueRecordHoldsTheRecipientsInTheFormTheTrackerMatches) {
  QueueRecord r;
  r.queue_id = "4ABC";
  r.rcpts = {"Bob@Example.NET", "\"Carol\"@example.net", "a..b@example.net"};
  auto cmds = queueRecordCommands(parseConfig("", "x"), r);
  ASSERT_EQ(cmds.size(), 3u);
  auto at = std::find(cmds[1].begin(), cmds[1].end(), "rcpts");
  ASSERT_NE(at, cmds[1].end());
  ASSERT_NE(at + 1, cmds[1].end());
  EXPECT_EQ(*(at + 1), "bob@example.net\ncarol@example.net\na..b@example.net");
  EXPECT_EQ(trackedRecipientKey("no-domain"), "no-domain");  // no lookup key: as given
}

TEST(Events, DecodesAStreamEntryAndToleratesJunk) {
  redisReply id{}, k1{}, v1{}, k2{}, v2{}, fields{}, entry{};
  auto str = [](redisReply& r, const char* s) {
    r.type = REDIS_REPLY_STRING;
    r.str = const_cast<char*>(s);
    r.len = strlen(s);
  };
  str(id, "1-0");
  str(k1, "qid");
  str(v1, "ABC");
  str(k2, "time");
  str(v2, "42");
  redisReply* fv[] = {&k1, &v1, &k2, &v2};
  fields.type = REDIS_REPLY_ARRAY;
  fields.elements = 4;
  fields.element = fv;
  redisReply* ev[] = {&id, &fields};
  entry.type = REDIS_REPLY_ARRAY;
  entry.elements = 2;
  entry.element = ev;
  Event e = eventFromEntry(&entry);
  EXPECT_EQ(e.id, "1-0");
  EXPECT_EQ(e.queue_id, "ABC");
  EXPECT_EQ(e.time_ms, 42);
  EXPECT_EQ(eventFromEntry(nullptr).id, "");
  EXPECT_EQ(eventFromEntry(&id).id, "");
}
