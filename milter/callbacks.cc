// callbacks.cc — libmilter callbacks: per-connection state behind
// smfi_setpriv, envelope and header capture, and at end of message: load the
// account's data (one round trip), run lib/rules_message.cc, apply the plan
// (header edits, recipient removal, reject/discard) and record every outcome
// (one round trip), or on_redis_failure. No exception crosses into C.
#include "callbacks.h"

#include <libmilter/mfdef.h>

#include <arpa/inet.h>
#include <exception>
#include <memory>
#include <optional>
#include <tuple>
#include <string>
#include <strings.h>
#include <vector>

#include <unistd.h>

#include "mailgate/address.h"
#include "mailgate/daemon.h"
#include "mailgate/crypto.h"
#include "mailgate/dkim_signer.h"
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

struct Prepared;

struct Connection {
  std::shared_ptr<const Config> config;  // snapshot at connect: a SIGHUP reload applies to new connections
  std::string client, client_ip, hostname;
  Message msg;
  std::unique_ptr<Prepared> prepared;  // decided at end of headers
  // The MTA agreed not to wait for replies to connect, MAIL, RCPT and each
  // header (SMFIP_NR_*): one milter round trip per message instead of ~15.
  bool no_reply = false;
  bool failed = false;  // an exception in a no-reply callback: tempfail at EOM
};

constexpr unsigned long kActions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT;
constexpr unsigned long kNoReply =
    SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;
constexpr unsigned long kSkipped = SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA;

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
    c->config = g_context->live->get();
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
    c.prepared.reset();
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
  if (c.config->on_redis_failure == RedisFailure::TempFail) {
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

// Everything decided at end of headers, so that DKIM sees the final headers
// before the body chunks; acted upon at end of message.
struct Prepared {
  std::optional<Error> redis_error;
  std::string account, key_id;
  Event base;
  std::vector<Event> events;
  std::vector<std::string> suppressed, kept;
  MessageFacts facts;
  MessagePlan plan;
  std::vector<std::unique_ptr<DkimSigner>> signers;
  std::string dkim_error;  // set when signing failed; dkim_on_error decides
  bool dkim_missing = false;  // no key for the domain
  std::string rewritten_from_domain;  // EMPTY-FROM rewritten: the default sender's domain
  std::string dkim_domain;            // the account's default signing domain
};

std::string fromDomain(const MessageFacts& facts) {
  return facts.from ? facts.from->address.substr(facts.from->address.rfind('@') + 1) : "";
}

void startSigning(Prepared& p, const Config& config, RedisConn& redis, const HeaderList& received,
                  const std::string& qid) {
  std::vector<std::string> domains;
  // EMPTY-FROM signs with dkim_default_domain; a From rewritten to the
  // account's default sender with that sender's domain.
  std::string domain = fromDomain(p.facts);
  if (p.plan.rule == "empty_from=rewrite") domain = p.rewritten_from_domain;
  else if (!p.facts.from) domain.clear();
  if (!domain.empty()) {
    domains.push_back(toLower(domain));
    for (auto& parent : parentDomains(domains[0])) domains.push_back(std::move(parent));
  }
  // The account's own default signing domain wins over the server's.
  std::string default_domain = p.dkim_domain.empty() ? config.dkim_default_domain : p.dkim_domain;
  if (!default_domain.empty()) domains.push_back(default_domain);
  if (domains.empty()) {
    p.dkim_missing = true;
    return;
  }
  auto loaded = g_context->dkim_keys->keysFor(redis, domains);
  if (!loaded) {
    p.redis_error = loaded.error();
    return;
  }
  auto keys = selectSigningKeys(domain, *loaded, default_domain);
  if (keys.empty()) {
    p.dkim_missing = true;
    return;
  }
  HeaderList final_headers = applyHeaderEdits(received, p.plan.edits);
  for (const auto& key : keys) {
    auto signer = DkimSigner::start(*g_context->dkim, key, qid);
    Status st = signer ? okStatus() : Status(signer.error());
    for (size_t i = 0; st && i < final_headers.size(); ++i) {
      st = (*signer)->header(final_headers[i].first, final_headers[i].second);
    }
    if (st) st = (*signer)->endOfHeaders();
    if (!st) {
      p.dkim_error = st.error().message;
      p.signers.clear();
      return;
    }
    p.signers.push_back(std::move(*signer));
  }
}

void prepare(SMFICTX* ctx, Connection& c) {
  auto p = std::make_unique<Prepared>();
  const Config& config = *c.config;
  std::string qid = queueId(ctx);
  std::tie(p->account, p->key_id) = splitAuthUser(c.msg.auth_user);
  auto lease = g_context->redis->acquire();
  if (!lease) {
    p->redis_error = lease.error();
    c.prepared = std::move(p);
    return;
  }
  RedisConn& redis = **lease;
  if (p->account.empty() && !c.client_ip.empty()) {
    // No AUTH: the client may send from an account's allowed network.
    auto pinned = g_context->store->accountForAddress(redis, c.client_ip);
    if (!pinned) p->redis_error = pinned.error();
    else p->account = pinned->value_or("");
  }
  int64_t now = nowMillis();
  p->facts = extractFacts(c.msg.headers, config, now);
  MessageAccount data;
  if (!p->redis_error && !p->account.empty()) {
    auto loaded = g_context->store->loadMessageAccount(redis, p->account, p->key_id, p->facts.from_domains,
                                                       p->facts.campaign, c.msg.rcpts);
    if (!loaded) p->redis_error = loaded.error();
    else data = std::move(*loaded);
  }
  if (p->redis_error) {
    c.prepared = std::move(p);
    return;
  }
  Event& base = p->base;
  base.time_ms = now;
  base.queue_id = qid;
  base.account = p->account;
  base.key_id = p->key_id;
  base.campaign = p->facts.campaign;
  base.letter_id = p->facts.letter_id;
  base.from = recordedFrom(p->facts);
  // accept-and-drop: recipients the policy let through because they are
  // stopped or bounced are removed and recorded as suppressed.
  for (const auto& rcpt : c.msg.rcpts) {
    Verdict v = data.policy.suppression == Suppression::AcceptAndDrop ? checkRecipient(rcpt, data.policy) : dunno();
    if (v.rule.empty()) {
      p->kept.push_back(rcpt);
      continue;
    }
    p->suppressed.push_back(rcpt);
    Event e = base;
    e.rcpt = rcpt;
    e.status = "suppressed";
    e.text = v.rule;
    p->events.push_back(std::move(e));
  }
  std::string hostname = c.hostname.empty() ? localHostname() : c.hostname;
  p->plan = decideMessage(p->facts, c.msg.headers, p->account, data, p->kept, config, now, hostname);
  p->base.message_id = p->plan.message_id;
  for (Event& e : p->events) e.message_id = p->plan.message_id;
  p->rewritten_from_domain = data.default_sender.substr(data.default_sender.rfind('@') + 1);
  p->dkim_domain = data.dkim_domain;
  if (p->plan.verdict.action == Action::Dunno && p->plan.discard.empty() && !p->kept.empty()) {
    startSigning(*p, config, redis, c.msg.headers, qid);
  }
  c.prepared = std::move(p);
}

sfsistat onEoh(SMFICTX* ctx) {
  return collecting(ctx, "eoh", [&] { prepare(ctx, ensureConn(ctx)); });
}

sfsistat onBody(SMFICTX* ctx, unsigned char* chunk, size_t len) {
  return collecting(ctx, "body", [&] {
    Connection& c = ensureConn(ctx);
    if (!c.prepared || c.prepared->signers.empty()) return;
    for (auto& signer : c.prepared->signers) {
      if (Status st = signer->body(chunk, len); !st) {
        c.prepared->dkim_error = st.error().message;
        c.prepared->signers.clear();
        return;
      }
    }
  });
}

sfsistat onEom(SMFICTX* ctx) {
  return guarded(ctx, "eom", [&] {
    Connection& c = ensureConn(ctx);
    const Config& config = *c.config;
    std::string qid = queueId(ctx);
    if (c.failed || !c.prepared) {
      MG_LOG_ERR("%s: tempfail: an earlier callback failed for this message", qid.c_str());
      return SMFIS_TEMPFAIL;
    }
    Prepared& p = *c.prepared;
    if (p.redis_error) return onRedisFailure(ctx, c, qid, p.account, *p.redis_error);
    auto lease = g_context->redis->acquire();
    if (!lease) return onRedisFailure(ctx, c, qid, p.account, lease.error());
    RedisConn& redis = **lease;
    std::vector<Event>& events = p.events;
    auto addEvent = [&](const std::string& rcpt, const std::string& status, const std::string& code,
                        const std::string& text) {
      Event e = p.base;
      e.rcpt = rcpt;
      e.status = status;
      e.code = code;
      e.text = text;
      events.push_back(std::move(e));
    };
    for (const auto& rcpt : p.suppressed) {
      std::string bracketed = "<" + rcpt + ">";
      if (smfi_delrcpt(ctx, bracketed.data()) != MI_SUCCESS) {
        MG_LOG_WARN("%s: cannot remove recipient <%s>", qid.c_str(), printable(rcpt).c_str());
      }
      MG_LOG_INFO("%s: suppressed: to=<%s> account=%s", qid.c_str(), printable(rcpt).c_str(),
                  printable(p.account).c_str());
    }
    if (p.kept.empty() && !p.suppressed.empty()) {
      if (Status st = recordMessage(redis, config, events, nullptr); !st) {
        return onRedisFailure(ctx, c, qid, p.account, st.error());
      }
      MG_LOG_INFO("%s: discard: no recipient left after suppression; account=%s", qid.c_str(),
                  printable(p.account).c_str());
      return SMFIS_DISCARD;
    }

    const MessagePlan& plan = p.plan;
    Verdict verdict = plan.verdict;
    if (verdict.action == Action::Dunno && plan.discard.empty()) {
      // DKIM problems: no key (dkim_required) or a signing error (dkim_on_error).
      if (!p.dkim_error.empty() && config.dkim_on_error_tempfail) {
        verdict = Verdict{Action::TempFail, "451 4.3.0 internal service error", "dkim_error"};
      } else if (p.dkim_missing && config.dkim_required) {
        verdict = Verdict{Action::TempFail, "451 4.3.0 internal service error", "dkim_no_key"};
      }
      if (!p.dkim_error.empty()) MG_LOG_WARN("%s: dkim: %s", qid.c_str(), p.dkim_error.c_str());
    }
    if (verdict.action != Action::Dunno) {
      Event refusal = p.base;
      setRefusal(refusal, verdict.reply);
      for (const auto& rcpt : p.kept) addEvent(rcpt, refusal.status, refusal.code, refusal.text);
      if (Status st = recordMessage(redis, config, events, nullptr); !st) {
        MG_LOG_WARN("%s: refusal not recorded: %s", qid.c_str(), st.error().message.c_str());
      }
      MG_LOG_INFO("%s: %s: END-OF-MESSAGE from %s: %s; from=<%s> header_from=<%s> account=%s key=%s "
                  "campaign=%s rule=%s",
                  qid.c_str(), verdict.action == Action::Reject ? "reject" : "tempfail", printable(c.client).c_str(),
                  verdict.reply.c_str(), printable(c.msg.sender).c_str(), printable(p.base.from).c_str(),
                  printable(p.account).c_str(), printable(p.key_id).c_str(), printable(p.base.campaign).c_str(),
                  verdict.rule.c_str());
      std::string code = verdict.reply.substr(0, 3), dsn = verdict.reply.substr(4, 5);
      std::string text = verdict.reply.substr(10);
      smfi_setreply(ctx, code.data(), dsn.data(), text.data());
      return verdict.action == Action::Reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
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
    std::string dkim_note = p.dkim_missing ? " dkim=none" : p.dkim_error.empty() ? "" : " dkim=error";
    if (plan.discard.empty()) {
      if (!applyEdits(ctx, plan.edits)) MG_LOG_WARN("%s: a header change was refused by the MTA", qid.c_str());
      for (auto& signer : p.signers) {
        auto sig = signer->finish();
        if (!sig) {
          MG_LOG_WARN("%s: dkim: %s", qid.c_str(), sig.error().message.c_str());
          if (config.dkim_on_error_tempfail) {
            smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.3.0"),
                          const_cast<char*>("internal service error"));
            return SMFIS_TEMPFAIL;
          }
          dkim_note = " dkim=error";
          continue;
        }
        if (smfi_insheader(ctx, 0, const_cast<char*>("DKIM-Signature"), sig->data()) != MI_SUCCESS) {
          MG_LOG_WARN("%s: dkim: the MTA refused the signature header", qid.c_str());
        }
        dkim_note += " dkim=" + signer->key().domain + "/" + signer->key().selector;
      }
    }
    QueueRecord record{qid, p.account, p.key_id, p.facts.campaign, p.facts.letter_id, p.base.from,
                       sha256Hex(p.facts.subject).substr(0, 16), p.base.time_ms,
                       static_cast<unsigned>(plan.deliver_rcpts.size()), plan.message_id};
    if (Status st = recordMessage(redis, config, events, plan.discard.empty() ? &record : nullptr); !st) {
      return onRedisFailure(ctx, c, qid, p.account, st.error());
    }
    if (!plan.discard.empty()) {
      MG_LOG_INFO("%s: discard (%s): from=<%s> nrcpt=%zu account=%s key=%s campaign=%s", qid.c_str(),
                  plan.discard.c_str(), printable(c.msg.sender).c_str(), p.kept.size(), printable(p.account).c_str(),
                  printable(p.key_id).c_str(), printable(p.base.campaign).c_str());
      return SMFIS_DISCARD;
    }
    MG_LOG_INFO("%s: accepted: from=<%s> nrcpt=%zu account=%s key=%s header_from=<%s> campaign=%s letter=%s%s%s%s",
                qid.c_str(), printable(c.msg.sender).c_str(), plan.deliver_rcpts.size(), printable(p.account).c_str(),
                printable(p.key_id).c_str(), printable(p.base.from).c_str(), printable(p.base.campaign).c_str(),
                printable(p.base.letter_id).c_str(), plan.rule.empty() ? "" : " ", plan.rule.c_str(),
                dkim_note.c_str());
    return SMFIS_CONTINUE;
  });
}

sfsistat onAbort(SMFICTX* ctx) {
  return guarded(ctx, "abort", [&] {
    if (Connection* c = conn(ctx)) {
      c->msg = Message{};
      c->prepared.reset();
    }
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
      onEoh,
      onBody,
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
