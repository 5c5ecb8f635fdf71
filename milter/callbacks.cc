// callbacks.cc — libmilter callbacks: per-connection state behind
// smfi_setpriv, envelope and header capture, and at end of message: load the
// account's data (one round trip), run lib/rules_message.cc, apply the plan
// (header edits, recipient removal, reject/discard) and record every outcome
// (one round trip), or on_redis_failure. No exception crosses into C.
#include "callbacks.h"

#include <libmilter/mfdef.h>

#include <arpa/inet.h>
#include <exception>
#include <string>
#include <strings.h>
#include <vector>

#include <unistd.h>

#include "mailgate/crypto.h"
#include "mailgate/events.h"
#include "mailgate/log.h"
#include "mailgate/rules_envelope.h"
#include "mailgate/rules_message.h"

namespace mailgate::milter {
namespace {

MilterContext* g_context = nullptr;

constexpr size_t kMaxHeaders = 10000;

struct Message {
  std::string sender, auth_user;
  std::vector<std::string> rcpts;
  HeaderList headers;
};

struct Connection {
  std::string client, client_ip, hostname;
  Message msg;
  // The MTA agreed not to wait for replies to connect, MAIL, RCPT and each
  // header (SMFIP_NR_*): one milter round trip per message instead of ~15.
  bool no_reply = false;
  bool failed = false;  // an exception in a no-reply callback: tempfail at EOM
};

constexpr unsigned long kActions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT;
constexpr unsigned long kNoReply = SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR;
constexpr unsigned long kSkipped = SMFIP_NOHELO | SMFIP_NOBODY | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NOEOH;

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

Connection& ensureConn(SMFICTX* ctx);

// For the callbacks that only collect data: no reply when the MTA agreed.
template <class F>
sfsistat collecting(SMFICTX* ctx, const char* stage, F&& body) noexcept {
  sfsistat rc = guarded(ctx, stage, [&] {
    body();
    return SMFIS_CONTINUE;
  });
  Connection* c = conn(ctx);
  if (c == nullptr) return rc;
  if (rc != SMFIS_CONTINUE) c->failed = true;
  return c->no_reply ? SMFIS_NOREPLY : SMFIS_CONTINUE;
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

sfsistat onNegotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long, unsigned long,
                     unsigned long* pf0, unsigned long* pf1, unsigned long* pf2, unsigned long* pf3) {
  return guarded(ctx, "negotiate", [&] {
    Connection& c = ensureConn(ctx);
    *pf0 = f0 & kActions;
    c.no_reply = (f1 & kNoReply) == kNoReply;
    *pf1 = (f1 & kSkipped) | (c.no_reply ? kNoReply : 0);
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
  });
}

sfsistat onConnect(SMFICTX* ctx, char* host, _SOCK_ADDR* addr) {
  return collecting(ctx, "connect", [&] {
    Connection& c = ensureConn(ctx);
    c.client = host == nullptr ? "unknown" : host;
    c.client_ip = addressText(addr);
    c.hostname = symval(ctx, "j");
  });
}

sfsistat onEnvFrom(SMFICTX* ctx, char** argv) {
  return collecting(ctx, "envfrom", [&] {
    Connection& c = ensureConn(ctx);
    c.msg = Message{};
    c.failed = false;
    c.msg.sender = bareAddress(argv == nullptr ? nullptr : argv[0]);
    c.msg.auth_user = symval(ctx, "{auth_authen}");
  });
}

sfsistat onEnvRcpt(SMFICTX* ctx, char** argv) {
  return collecting(ctx, "envrcpt", [&] {
    ensureConn(ctx).msg.rcpts.push_back(bareAddress(argv == nullptr ? nullptr : argv[0]));
  });
}

sfsistat onHeader(SMFICTX* ctx, char* name, char* value) {
  return collecting(ctx, "header", [&] {
    Message& m = ensureConn(ctx).msg;
    if (m.headers.size() < kMaxHeaders) m.headers.emplace_back(name ? name : "", value ? value : "");
  });
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

std::string localHostname() {
  char buf[256] = "localhost";
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// Applies the header edits of a plan; false when libmilter refused one.
bool applyEdits(SMFICTX* ctx, const std::vector<HeaderEdit>& edits) {
  for (const auto& e : edits) {
    char* name = const_cast<char*>(e.name.c_str());
    char* value = e.value.empty() ? nullptr : const_cast<char*>(e.value.c_str());
    int rc = e.kind == HeaderEdit::Kind::Add ? smfi_addheader(ctx, name, value) : smfi_chgheader(ctx, name, e.index, value);
    if (rc != MI_SUCCESS) return false;
  }
  return true;
}

sfsistat onEom(SMFICTX* ctx) {
  return guarded(ctx, "eom", [&] {
    Connection& c = ensureConn(ctx);
    const Config& config = g_context->config;
    std::string qid = queueId(ctx);
    if (c.failed) {
      MG_LOG_ERR("%s: tempfail: an earlier callback failed for this message", qid.c_str());
      return SMFIS_TEMPFAIL;
    }
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

    int64_t now = nowMillis();
    MessageFacts facts = extractFacts(c.msg.headers, config, now);
    MessageAccount data;
    if (!account.empty()) {
      std::string from_domain = facts.from ? facts.from->address.substr(facts.from->address.rfind('@') + 1) : "";
      auto loaded = g_context->store->loadMessageAccount(redis, account, key_id, from_domain, facts.campaign,
                                                         c.msg.rcpts);
      if (!loaded) return onRedisFailure(ctx, c, qid, account, loaded.error());
      data = std::move(*loaded);
    }

    Event base;
    base.time_ms = now;
    base.queue_id = qid;
    base.account = account;
    base.key_id = key_id;
    base.campaign = facts.campaign;
    base.letter_id = facts.letter_id;
    base.from = facts.from ? facts.from->address : kEmptyFrom;
    std::vector<Event> events;
    auto addEvent = [&](const std::string& rcpt, const std::string& status, const std::string& code,
                        const std::string& text) {
      Event e = base;
      e.rcpt = rcpt;
      e.status = status;
      e.code = code;
      e.text = text;
      events.push_back(std::move(e));
    };

    // accept-and-drop: recipients the policy let through because they are
    // stopped or bounced are removed and recorded as suppressed.
    std::vector<std::string> kept;
    for (const auto& rcpt : c.msg.rcpts) {
      Verdict v = data.policy.suppression == Suppression::AcceptAndDrop ? checkRecipient(rcpt, data.policy) : dunno();
      if (v.rule.empty()) {
        kept.push_back(rcpt);
        continue;
      }
      std::string bracketed = "<" + rcpt + ">";
      if (smfi_delrcpt(ctx, bracketed.data()) != MI_SUCCESS) {
        MG_LOG_WARN("%s: cannot remove recipient <%s>", qid.c_str(), printable(rcpt).c_str());
        kept.push_back(rcpt);
        continue;
      }
      addEvent(rcpt, "suppressed", "", v.rule);
      MG_LOG_INFO("%s: suppressed: to=<%s> account=%s rule=%s", qid.c_str(), printable(rcpt).c_str(),
                  printable(account).c_str(), v.rule.c_str());
    }

    if (kept.empty() && !events.empty()) {
      if (Status st = recordMessage(redis, config, events, nullptr); !st) {
        return onRedisFailure(ctx, c, qid, account, st.error());
      }
      MG_LOG_INFO("%s: discard: no recipient left after suppression; account=%s", qid.c_str(),
                  printable(account).c_str());
      return SMFIS_DISCARD;
    }

    std::string hostname = c.hostname.empty() ? localHostname() : c.hostname;
    MessagePlan plan = decideMessage(facts, c.msg.headers, account, data, kept, config, now, hostname);
    if (plan.verdict.action == Action::Reject) {
      Event refusal = base;
      setRefusal(refusal, plan.verdict.reply);
      for (const auto& rcpt : kept) addEvent(rcpt, refusal.status, refusal.code, refusal.text);
      if (Status st = recordMessage(redis, config, events, nullptr); !st) {
        MG_LOG_WARN("%s: refusal not recorded: %s", qid.c_str(), st.error().message.c_str());
      }
      MG_LOG_INFO("%s: reject: END-OF-MESSAGE from %s: %s; from=<%s> header_from=<%s> account=%s key=%s "
                  "campaign=%s rule=%s",
                  qid.c_str(), printable(c.client).c_str(), plan.verdict.reply.c_str(), printable(c.msg.sender).c_str(),
                  printable(base.from).c_str(), printable(account).c_str(), printable(key_id).c_str(),
                  printable(base.campaign).c_str(), plan.verdict.rule.c_str());
      std::string code = plan.verdict.reply.substr(0, 3), dsn = plan.verdict.reply.substr(4, 5);
      std::string text = plan.verdict.reply.substr(10);
      smfi_setreply(ctx, code.data(), dsn.data(), text.data());
      return SMFIS_REJECT;
    }

    for (const auto& rcpt : plan.sink_rcpts) {
      std::string bracketed = "<" + rcpt + ">";
      if (plan.discard.empty() && smfi_delrcpt(ctx, bracketed.data()) != MI_SUCCESS) {
        MG_LOG_WARN("%s: cannot remove sink recipient <%s>", qid.c_str(), printable(rcpt).c_str());
      }
      addEvent(rcpt, "sink", "250", "");
    }
    const std::string& status = plan.discard == "sandbox" ? plan.discard : "accepted";
    for (const auto& rcpt : plan.deliver_rcpts) addEvent(rcpt, status, "250", "");
    if (plan.discard.empty() && !applyEdits(ctx, plan.edits)) {
      MG_LOG_WARN("%s: a header change was refused by the MTA", qid.c_str());
    }
    QueueRecord record{qid, account, key_id, facts.campaign, facts.letter_id, base.from,
                       sha256Hex(facts.subject).substr(0, 16), now, static_cast<unsigned>(plan.deliver_rcpts.size())};
    if (Status st = recordMessage(redis, config, events, plan.discard.empty() ? &record : nullptr); !st) {
      return onRedisFailure(ctx, c, qid, account, st.error());
    }
    if (!plan.discard.empty()) {
      MG_LOG_INFO("%s: discard (%s): from=<%s> nrcpt=%zu account=%s key=%s campaign=%s", qid.c_str(),
                  plan.discard.c_str(), printable(c.msg.sender).c_str(), kept.size(), printable(account).c_str(),
                  printable(key_id).c_str(), printable(base.campaign).c_str());
      return SMFIS_DISCARD;
    }
    MG_LOG_INFO("%s: accepted: from=<%s> nrcpt=%zu account=%s key=%s header_from=<%s> campaign=%s letter=%s%s%s",
                qid.c_str(), printable(c.msg.sender).c_str(), plan.deliver_rcpts.size(), printable(account).c_str(),
                printable(key_id).c_str(), printable(base.from).c_str(), printable(base.campaign).c_str(),
                printable(base.letter_id).c_str(), plan.rule.empty() ? "" : " ", plan.rule.c_str());
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
      kActions,
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
      onNegotiate,
  };
  return &desc;
}

}  // namespace mailgate::milter
