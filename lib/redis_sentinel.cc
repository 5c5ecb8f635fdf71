// redis_sentinel.cc — master discovery through Redis Sentinel: the replies
// of SENTINEL get-master-addr-by-name and ROLE, and asking each Sentinel in
// turn (short connections, AUTH with redis_sentinel_password when set).
#include "mailgate/redis_sentinel.h"

#include <charconv>
#include <memory>

namespace mailgate {
namespace {

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

std::string text(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
                          r->type == REDIS_REPLY_ERROR)
             ? std::string(r->str, r->len)
             : std::string();
}

// One command on `c`; the reply, or why there is none.
Result<std::unique_ptr<redisReply, ReplyFree>> ask(redisContext* c, std::initializer_list<std::string> argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* raw = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(ptrs.size()), ptrs.data(), lens.data()));
  if (raw == nullptr) return Error{Error::Kind::Unavailable, c->errstr[0] ? c->errstr : "no reply"};
  std::unique_ptr<redisReply, ReplyFree> r(raw);
  if (r->type == REDIS_REPLY_ERROR) return Error{Error::Kind::Server, text(r.get())};
  return r;
}

}  // namespace

Result<Endpoint> masterFromSentinelReply(const redisReply* reply, std::string_view master) {
  if (reply != nullptr && reply->type == REDIS_REPLY_NIL) {
    return Error{Error::Kind::Server, "does not know master " + std::string(master)};
  }
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING) {
    return Error{Error::Kind::Server, "unexpected reply to SENTINEL get-master-addr-by-name"};
  }
  std::string host = text(reply->element[0]);
  std::string port = text(reply->element[1]);
  unsigned n = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (host.empty() || ec != std::errc() || p != port.data() + port.size() || n == 0 || n > 65535) {
    return Error{Error::Kind::Server, "bad master address \"" + host + "\" \"" + port + "\""};
  }
  return Endpoint{Endpoint::Kind::Tcp, "", host, static_cast<uint16_t>(n)};
}

bool roleIsMaster(const redisReply* reply) {
  return reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
         text(reply->element[0]) == "master";
}

bool isNotMasterError(std::string_view error) {
  return error.starts_with("READONLY") || error.starts_with("MASTERDOWN");
}

Result<Endpoint> askSentinels(const RedisSentinel& sentinel, const std::string& password,
                              std::chrono::milliseconds timeout, size_t& next) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  std::string why;
  const size_t n = sentinel.sentinels.size();
  for (size_t i = 0; i < n; ++i) {
    size_t index = (next + i) % n;
    const Endpoint& s = sentinel.sentinels[index];
    auto result = [&]() -> Result<Endpoint> {
      std::unique_ptr<redisContext, ContextDeleter> c(redisConnectWithTimeout(s.host.c_str(), s.port, tv));
      if (c == nullptr) return Error{Error::Kind::Unavailable, "cannot allocate context"};
      if (c->err) return Error{Error::Kind::Unavailable, std::string("connect: ") + c->errstr};
      if (redisSetTimeout(c.get(), tv) != REDIS_OK) return Error{Error::Kind::Unavailable, "cannot set timeout"};
      if (!password.empty()) {
        // Never echo the password: name the command only.
        if (auto r = ask(c.get(), {"AUTH", password}); !r) return Error{r.error().kind, "AUTH failed: " + r.error().message};
      }
      auto r = ask(c.get(), {"SENTINEL", "get-master-addr-by-name", sentinel.master});
      if (!r) return r.error();
      return masterFromSentinelReply(r->get(), sentinel.master);
    }();
    if (result) {
      next = index;
      return result;
    }
    why += (why.empty() ? "" : "; ") + s.host + ":" + std::to_string(s.port) + ": " + result.error().message;
  }
  return Error{Error::Kind::Unavailable, "no Sentinel named the master " + sentinel.master + " (" + why + ")"};
}

}  // namespace mailgate
