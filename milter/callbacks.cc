// callbacks.cc — libmilter callbacks: per-connection state behind
// smfi_setpriv, envelope and header capture, and at end of message the
// outcome record in Redis (or on_redis_failure). No exception crosses into C.
#include "callbacks.h"

#include <arpa/inet.h>
#include <exception>
#include <string>
#include <strings.h>
#include <vector>

#include "mailgate/events.h"
#include "mailgate/log.h"

namespace mailgate::milter {
namespace {

MilterContext* g_context = nullptr;

struct Message {
  std::string sender, auth_user, header_from, header_to, subject;
  std::vector<std::string> rcpts;
};

struct Connection {
  std::string client, client_ip;
  Message msg;
};

Connection* conn(SMFICTX* ctx) { return static_cast<Connection*>(smfi_getpriv(ctx)); }

std::string symval(SMFICTX* ctx, const char* name) {
  const char* v = smfi_getsymval(ctx, const_cast<char*>(name));
  return v == nullptr ? std::string() : std::string(v);
}

std::string queueId(SMFICTX* ctx) {
  std::string id = symval(ctx, "i");
  return id.empty() ? "NOQUEUE" : id;
}

// "<a@b>" -> "a@b"
std::string bareAddress(const char* arg) {
  std::string_view a = arg == nullptr ? "" : arg;
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
  return std::string(a);
}

template <class F>
sfsistat guarded(SMFICTX* ctx, const char* stage, F&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    MG_LOG_ERR("%s: panic in %s: %s", queueId(ctx).c_str(), stage, e.what());
  } catch (...) {
    MG_LOG_ERR("%s: panic in %s: unknown exception", queueId(ctx).c_str(), stage);
  }
  return SMFIS_TEMPFAIL;
}

// The connection state, created on first use: xxfi_connect is not always called.
Connection& ensureConn(SMFICTX* ctx) {
  Connection* c = conn(ctx);
  if (c == nullptr) {
    c = new Connection();
    smfi_setpriv(ctx, c);
  }
  return *c;
}

std::string addressText(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (sa == nullptr) return "";
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

sfsistat onConnect(SMFICTX* ctx, char* host, _SOCK_ADDR* addr) {
  return guarded(ctx, "connect", [&] {
    Connection& c = ensureConn(ctx);
    c.client = host == nullptr ? "unknown" : host;
    c.client_ip = addressText(addr);
    return SMFIS_CONTINUE;
  });
}

sfsistat onEnvFrom(SMFICTX* ctx, char** argv) {
  return guarded(ctx, "envfrom", [&] {
    Connection& c = ensureConn(ctx);
    c.msg = Message{};
    c.msg.sender = bareAddress(argv == nullptr ? nullptr : argv[0]);
    c.msg.auth_user = symval(ctx, "{auth_authen}");
    return SMFIS_CONTINUE;
  });
}

sfsistat onEnvRcpt(SMFICTX* ctx, char** argv) {
  return guarded(ctx, "envrcpt", [&] {
    ensureConn(ctx).msg.rcpts.push_back(bareAddress(argv == nullptr ? nullptr : argv[0]));
    return SMFIS_CONTINUE;
  });
}

sfsistat onHeader(SMFICTX* ctx, char* name, char* value) {
  return guarded(ctx, "header", [&] {
    Message& m = ensureConn(ctx).msg;
    std::string* slot = nullptr;
    if (strcasecmp(name, "From") == 0) slot = &m.header_from;
    else if (strcasecmp(name, "To") == 0) slot = &m.header_to;
    else if (strcasecmp(name, "Subject") == 0) slot = &m.subject;
    if (slot != nullptr && slot->empty() && value != nullptr) *slot = value;
    return SMFIS_CONTINUE;
  });
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

// Redis failure at end of message: on_redis_failure decides.
sfsistat onRedisFailure(SMFICTX* ctx, const Connection& c, const std::string& qid, const std::string& account,
                        const Error& error) {
  if (g_context->config.on_redis_failure == RedisFailure::TempFail) {
    MG_LOG_WARN("%s: tempfail: END-OF-MESSAGE from %s: 451 4.3.0 internal service error; from=<%s> "
                "account=%s reason=%s",
                qid.c_str(), printable(c.client).c_str(), printable(c.msg.sender).c_str(), printable(account).c_str(),
                error.message.c_str());
    smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.3.0"),
                  const_cast<char*>("internal service error"));
    return SMFIS_TEMPFAIL;
  }
  MG_LOG_WARN("%s: accept without outcome record (on_redis_failure = accept): from=<%s> account=%s reason=%s",
              qid.c_str(), printable(c.msg.sender).c_str(), printable(account).c_str(), error.message.c_str());
  return SMFIS_CONTINUE;
}

sfsistat onEom(SMFICTX* ctx) {
  return guarded(ctx, "eom", [&] {
    Connection& c = ensureConn(ctx);
    const Config& config = g_context->config;
    std::string qid = queueId(ctx);
    auto [account, key_id] = splitAuthUser(c.msg.auth_user);
    auto lease = g_context->redis->acquire();
    if (!lease) return onRedisFailure(ctx, c, qid, account, lease.error());
    RedisConn& redis = **lease;
    if (account.empty() && !c.client_ip.empty()) {
      // No AUTH: the client may send from an account's allowed network.
      auto pinned = g_context->store->accountForAddress(redis, c.client_ip);
      if (!pinned) return onRedisFailure(ctx, c, qid, account, pinned.error());
      account = pinned->value_or("");
    }

    Event event;
    event.time_ms = nowMillis();
    event.queue_id = qid;
    event.account = account;
    event.key_id = key_id;
    event.from = c.msg.sender;

    // accept-and-drop: recipients the policy let through because they are
    // stopped or bounced are removed here and recorded as suppressed.
    std::vector<std::string> kept = c.msg.rcpts;
    if (!account.empty()) {
      auto suppressed = g_context->store->suppressedRecipients(redis, account, c.msg.rcpts);
      if (!suppressed) return onRedisFailure(ctx, c, qid, account, suppressed.error());
      for (const auto& [rcpt, rule] : *suppressed) {
        std::string bracketed = "<" + rcpt + ">";
        if (smfi_delrcpt(ctx, bracketed.data()) != MI_SUCCESS) {
          MG_LOG_WARN("%s: cannot remove recipient <%s>", qid.c_str(), printable(rcpt).c_str());
          continue;
        }
        Event s = event;
        s.rcpt = rcpt;
        s.status = "suppressed";
        s.text = rule;
        if (Status st = recordOutcome(redis, config, s, nullptr); !st) {
          return onRedisFailure(ctx, c, qid, account, st.error());
        }
        MG_LOG_INFO("%s: suppressed: to=<%s> account=%s rule=%s", qid.c_str(), printable(rcpt).c_str(),
                    printable(account).c_str(), rule.c_str());
        std::erase(kept, rcpt);
      }
      if (kept.empty()) {
        MG_LOG_INFO("%s: discard: no recipient left after suppression; account=%s", qid.c_str(),
                    printable(account).c_str());
        return SMFIS_DISCARD;
      }
    }

    event.rcpt = joined(kept);
    event.status = "accepted";
    event.code = "250";
    QueueRecord record{qid, account, key_id, "", "", c.msg.sender, event.time_ms, static_cast<unsigned>(kept.size())};
    if (Status stored = recordOutcome(redis, config, event, &record); !stored) {
      return onRedisFailure(ctx, c, qid, account, stored.error());
    }
    MG_LOG_INFO("%s: accepted: from=<%s> nrcpt=%zu account=%s key=%s header_from=\"%s\"", qid.c_str(),
                printable(c.msg.sender).c_str(), kept.size(), printable(account).c_str(),
                printable(key_id).c_str(), printable(c.msg.header_from).c_str());
    return SMFIS_CONTINUE;
  });
}

sfsistat onAbort(SMFICTX* ctx) {
  return guarded(ctx, "abort", [&] {
    if (Connection* c = conn(ctx)) c->msg = Message{};
    return SMFIS_CONTINUE;
  });
}

sfsistat onClose(SMFICTX* ctx) {
  delete conn(ctx);
  smfi_setpriv(ctx, nullptr);
  return SMFIS_CONTINUE;
}

}  // namespace

void setMilterContext(MilterContext* context) { g_context = context; }

smfiDesc* milterDescription() {
  static smfiDesc desc = {
      const_cast<char*>("mailgate"),
      SMFI_VERSION,
      SMFIF_DELRCPT,
      onConnect,
      nullptr,  // helo
      onEnvFrom,
      onEnvRcpt,
      onHeader,
      nullptr,  // eoh
      nullptr,  // body
      onEom,
      onAbort,
      onClose,
      nullptr,  // unknown
      nullptr,  // data
      nullptr,  // negotiate
  };
  return &desc;
}

}  // namespace mailgate::milter
