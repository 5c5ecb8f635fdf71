// cmd_status.cc — `mailgatectl status`: can the MTA reach each daemon
// (policy, auth and milter sockets), is each tracker alive, how fast Redis
// answers, how long the events stream is, how many webhook events wait and
// how many messages had no outcome record today (a Redis gap).
#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>

#include "ctl.h"
#include "mailgate/events.h"
#include "mailgate/listen.h"

namespace mailgate::ctl {
namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(1);

// A non-blocking connect() that gives up at the deadline. A TCP connect in
// progress is awaited with poll(); a UNIX socket whose listen queue is full
// answers EAGAIN at once (a blocking connect would wait for an accept() that
// may never come), so it is tried again until the deadline.
std::string connectWithin(int fd, const sockaddr* sa, socklen_t len) {
  auto deadline = std::chrono::steady_clock::now() + kConnectTimeout;
  auto msLeft = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, left.count()));
  };
  const std::string timeout = "not reachable: no answer within 1 s";
  while (connect(fd, sa, len) != 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {  // UNIX socket, listen queue full
      if (msLeft() == 0) return timeout;
      poll(nullptr, 0, std::min(50, msLeft()));
      continue;
    }
    if (errno != EINPROGRESS) return std::string("not reachable: ") + std::strerror(errno);
    pollfd p{fd, POLLOUT, 0};
    int n;
    while ((n = poll(&p, 1, msLeft())) < 0 && errno == EINTR) {
    }
    if (n <= 0) return n == 0 ? timeout : std::string("not reachable: ") + std::strerror(errno);
    int err = 0;
    socklen_t err_len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) err = errno;
    return err == 0 ? "ok" : std::string("not reachable: ") + std::strerror(err);
  }
  return "ok";
}

// Connects to a daemon's socket within 1 s; "ok" or why not.
std::string reach(const Endpoint& e) {
  if (e.kind == Endpoint::Kind::Unix) {
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return std::string("not reachable: socket: ") + std::strerror(errno);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (e.path.size() >= sizeof sa.sun_path) return "path too long";
    std::memcpy(sa.sun_path, e.path.c_str(), e.path.size() + 1);
    return connectWithin(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(e.host.c_str(), std::to_string(e.port).c_str(), &hints, &res) != 0 || res == nullptr) {
    return "cannot resolve " + e.host;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  UniqueFd fd(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return std::string("not reachable: socket: ") + std::strerror(errno);
  return connectWithin(fd.get(), res->ai_addr, res->ai_addrlen);
}

// The milter spec ("unix:/path", "local:/path", "inet:port@host") as an Endpoint.
Endpoint milterEndpoint(const std::string& spec) {
  Endpoint e;
  for (const char* prefix : {"unix:", "local:"}) {
    if (spec.rfind(prefix, 0) == 0) {
      e.path = spec.substr(std::strlen(prefix));
      return e;
    }
  }
  e.kind = Endpoint::Kind::Tcp;
  std::string rest = spec.substr(spec.find(':') + 1);
  size_t at = rest.find('@');
  e.port = static_cast<uint16_t>(std::atoi(rest.substr(0, at).c_str()));
  e.host = at == std::string::npos ? "127.0.0.1" : rest.substr(at + 1);
  return e;
}

}  // namespace

int cmdStatus(const Args& a) {
  expectWords(a, 1, "status");
  Config c = loadOrDie(a);
  nlohmann::json out;
  out["policy"] = reach(c.policy_listen);
  out["auth"] = reach(c.auth_listen);
  out["milter"] = reach(milterEndpoint(c.milter_listen));

  RedisConn redis(RedisSettings::fromConfig(c));
  std::vector<double> rtts;
  std::string redis_error;
  for (int i = 0; i < 5; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto r = redis.command({"PING"});
    if (!r) {
      redis_error = r.error().message;
      break;
    }
    rtts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  bool healthy = out["policy"] == "ok" && out["auth"] == "ok" && out["milter"] == "ok";
  if (!redis_error.empty()) {
    out["redis"] = {{"server", c.redisServerString()}, {"error", redis_error}};
    healthy = false;
  } else {
    std::sort(rtts.begin(), rtts.end());
    out["redis"] = {{"server", c.redisServerString()}, {"latency_ms", rtts[rtts.size() / 2]}};
    StoreKeys keys(c.redis_prefix);
    std::string stream = eventsStreamKey(c);
    auto r = orDie(checkedPipeline(redis, {{"XLEN", stream},
                                           {"SMEMBERS", keys.trackers()},
                                           {"HGETALL", keys.refusedWithoutAccount(utcDate(nowMillis()))},
                                           {"HGETALL", keys.unrecorded(utcDate(nowMillis()))}}));
    auto groups = redis.command({"XINFO", "GROUPS", stream});
    if (!groups && !groups.error().message.starts_with("ERR no such key")) die(groups.error().message);
    out["events"] = r[0]->integer;
    nlohmann::json refused = nlohmann::json::object();
    for (size_t i = 0; r[2]->type == REDIS_REPLY_ARRAY && i + 1 < r[2]->elements; i += 2) {
      refused[replyString(r[2]->element[i])] = std::atoll(replyString(r[2]->element[i + 1]).c_str());
    }
    out["refused_without_account_today"] = refused;
    // Messages the milter passed (on_redis_failure = accept) or refused without their records.
    const redisReply* gap = r[3].get();
    out["unrecorded_today"] = {{"messages", std::atoll(hashField(gap, "messages").c_str())},
                               {"recipients", std::atoll(hashField(gap, "recipients").c_str())}};
    if (int64_t since = std::atoll(hashField(gap, "last_since").c_str()); since > 0) {
      out["unrecorded_today"]["last_gap"] = {
          {"from", utcTimestamp(since)},
          {"to", utcTimestamp(std::atoll(hashField(gap, "last_until").c_str()))},
          {"host", hashField(gap, "last_host")}};
    }
    nlohmann::json backlog = nullptr;
    for (size_t i = 0; groups && i < (*groups)->elements; ++i) {
      const redisReply* g = (*groups)->element[i];
      if (hashField(g, "name") != kWebhookGroup) continue;
      backlog = {{"pending", std::atoll(hashField(g, "pending").c_str())},
                 {"unread", std::atoll(hashField(g, "lag").c_str())}};
    }
    out["webhook_backlog"] = backlog;
    nlohmann::json trackers = nlohmann::json::array();
    int64_t now = nowMillis();
    for (size_t i = 0; i < r[1]->elements; ++i) {
      std::string name = replyString(r[1]->element[i]);
      auto h = orDie(redis.command({"HGETALL", keys.tracker(name)}));
      int64_t beat = std::atoll(hashField(h.get(), "heartbeat").c_str());
      bool alive = beat > 0 && now - beat < 30000;
      trackers.push_back({{"name", name}, {"alive", alive}, {"last_seen_s", beat ? (now - beat) / 1000 : -1},
                          {"log", hashField(h.get(), "path")}, {"offset", hashField(h.get(), "offset")}});
    }
    out["trackers"] = trackers;
  }
  if (a.json) {
    printJson(out);
    return healthy ? 0 : 1;
  }
  std::vector<std::vector<std::string>> rows{{"policy " + c.policy_listen.toString() + ":", out["policy"]},
                                             {"auth " + c.auth_listen.toString() + ":", out["auth"]},
                                             {"milter " + c.milter_listen + ":", out["milter"]}};
  if (!redis_error.empty()) {
    rows.push_back({"redis " + c.redisServerString() + ":", "not reachable: " + redis_error});
  } else {
    char latency[32];
    snprintf(latency, sizeof latency, "ok, %.2f ms", out["redis"]["latency_ms"].get<double>());
    rows.push_back({"redis " + c.redisServerString() + ":", latency});
    rows.push_back({"events stream:", std::to_string(out["events"].get<long long>()) + " entries"});
    std::string refusals;
    for (const auto& [code, n] : out["refused_without_account_today"].items()) {
      refusals += (refusals.empty() ? "" : ", ") + code + ": " + std::to_string(n.get<long long>());
    }
    rows.push_back({"refused without account today:", refusals.empty() ? "none" : refusals});
    const auto& gap = out["unrecorded_today"];
    std::string unrecorded = "none";
    if (gap["messages"].get<long long>() > 0) {
      unrecorded = std::to_string(gap["messages"].get<long long>()) + " messages, " +
                   std::to_string(gap["recipients"].get<long long>()) + " recipients";
      if (gap.contains("last_gap")) {
        unrecorded += "; last gap " + gap["last_gap"]["from"].get<std::string>() + " to " +
                      gap["last_gap"]["to"].get<std::string>() + " on " + gap["last_gap"]["host"].get<std::string>();
      }
    }
    rows.push_back({"without outcome record today:", unrecorded});
    rows.push_back({"webhook backlog:", out["webhook_backlog"].is_null()
                                            ? "no webhook consumer yet"
                                            : std::to_string(out["webhook_backlog"]["pending"].get<long long>()) +
                                                  " pending, " +
                                                  std::to_string(out["webhook_backlog"]["unread"].get<long long>()) +
                                                  " not yet read"});
    for (const auto& t : out["trackers"]) {
      rows.push_back({"tracker " + t["name"].get<std::string>() + ":",
                      std::string(t["alive"].get<bool>() ? "alive" : "silent") + ", seen " +
                          std::to_string(t["last_seen_s"].get<long long>()) + " s ago, " +
                          t["log"].get<std::string>() + " at " + t["offset"].get<std::string>()});
    }
  }
  printTable(rows);
  return healthy ? 0 : 1;
}

}  // namespace mailgate::ctl
