// callbacks.cc — libmilter callbacks: per-connection state behind
// smfi_setpriv, envelope and header capture; at end of headers load the
// account's data and dkim:version (one round trip; cached DKIM keys need no
// other), run lib/rules_message.cc; at end of message apply the plan
// (header edits, recipient removal, reject/discard) and record every outcome
// (one round trip). A pooled Redis connection is held for a round trip
// only, never across callbacks. A Redis failure after the plan only loses the record
// (on_redis_failure). Mail without an account: local_submission. Lines over
// 998 octets (long_lines): header fields refolded by the plan; a body with
// one re-encoded from its copy at end of message and signed anew. No
// exception crosses into C.
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
#include "mailgate/body_copy.h"
#include "mailgate/daemon.h"
#include "mailgate/crypto.h"
#include "mailgate/dkim_signer.h"
#include "mailgate/events.h"
#include "mailgate/log.h"
#include "mailgate/limits.h"
#include "mailgate/long_lines.h"
#include "mailgate/message_edits.h"
#include "mailgate/mime_reencode.h"
#include "mailgate/rules_envelope.h"
#include "mailgate/rules_message.h"

namespace mailgate::milter {
namespace {

MilterContext* g_context = nullptr;

constexpr const char* kInternalError = "451 4.3.0 internal service error";

struct Message {
  std::string sender, auth_user;
  std::vector<std::string> rcpts;
  HeaderList headers;
  bool too_many_headers = false;  // more than kMaxHeaderFields: refused, never checked in part
};

struct Prepared;

struct Connection {
  std::shared_ptr<const Config> config;  // snapshot at connect: a SIGHUP reload applies to new connections
  std::string client, client_ip, hostname;
  // Postfix presents non-SMTP mail (sendmail(1), pickup) as localhost,
  // 127.0.0.1, port 0; a real client never has port 0.
  bool non_smtp = false;
  Message msg;
  std::unique_ptr<Prepared> prepared;  // decided at end of headers
  // The MTA agreed not to wait for replies to connect, MAIL, RCPT and each
  // header (SMFIP_NR_*): one milter round trip per message instead of ~15.
  bool no_reply = false;
  bool failed = false;  // an exception in a no-reply callback: tempfail at EOM
};

constexpr unsigned long kActions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT | SMFIF_CHGBODY;
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

// The address and port of an AF_INET/AF_INET6 client; port -1 for others.
std::pair<std::string, int> addressText(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "";
  int port = -1;
  if (sa != nullptr && sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    port = ntohs(in->sin_port);
  } else if (sa != nullptr && sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    port = ntohs(in6->sin6_port);
  }
  return {buf, port};
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
    int port = 0;
    std::tie(c.client_ip, port) = addressText(addr);
    c.non_smtp = port == 0;
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
    if (m.headers.size() < kMaxHeaderFields) m.headers.emplace_back(name ? name : "", value ? value : "");
    else m.too_many_headers = true;
  });
}


// "550 5.7.1 text" as the reply libmilter sends.
void setReply(SMFICTX* ctx, const std::string& reply) {
  std::string code = reply.substr(0, 3), dsn = reply.substr(4, 5), text = reply.substr(10);
  smfi_setreply(ctx, code.data(), dsn.data(), text.data());
}

// One message's outcome records in one MULTI/EXEC, with the count of the
// records lost since the last write that succeeded.
Status writeRecords(const Config& config, const std::vector<Event>& events, const QueueRecord* queue) {
  auto lease = g_context->redis->acquire();
  if (!lease) return lease.error();
  return writeWithUnrecorded(**lease, config, *g_context->unrecorded, outcomeCommands(config, events, queue),
                             g_context->host);
}

// A message whose records are lost: counted, and the gap logged when it opens.
void countUnrecorded(size_t recipients, const Error& error) {
  if (g_context->unrecorded->add(recipients, nowMillis())) {
    MG_LOG_WARN("redis: outcome records cannot be written (%s); the messages without one are counted until they "
                "can be, each logged as \"without outcome record\"", error.message.c_str());
  }
}

// Redis failure at end of message: on_redis_failure decides. `planned` is
// what accept does: CONTINUE before a plan exists; once there is one, what it
// decided (DISCARD for sandbox, sink-only, all suppressed), so that a lost
// record never delivers mail the plan dropped.
sfsistat onRedisFailure(SMFICTX* ctx, const Connection& c, const std::string& qid, const std::string& account,
                        const Error& error, sfsistat planned = SMFIS_CONTINUE) {
  if (c.config->on_redis_failure == RedisFailure::TempFail) {  // the outage: logged once by RedisConn
    MG_LOG_INFO("%s: tempfail: END-OF-MESSAGE from %s: 451 4.3.0 internal service error; from=<%s> "
                "account=%s reason=%s",
                qid.c_str(), printable(c.client).c_str(), printable(c.msg.sender).c_str(), printable(account).c_str(),
                error.message.c_str());
    setReply(ctx, kInternalError);
    return SMFIS_TEMPFAIL;
  }
  countUnrecorded(c.msg.rcpts.size(), error);
  MG_LOG_INFO("%s: %s without outcome record (on_redis_failure = accept): from=<%s> account=%s reason=%s",
              qid.c_str(), planned == SMFIS_DISCARD ? "discard" : "accept", printable(c.msg.sender).c_str(),
              printable(account).c_str(), error.message.c_str());
  return planned;
}

// The recipient and header changes of one message, through libmilter.
class MilterEditor : public MessageEditor {
 public:
  explicit MilterEditor(SMFICTX* ctx) : ctx_(ctx) {}
  bool removeRecipient(const std::string& rcpt) override {
    std::string bracketed = "<" + rcpt + ">";
    return smfi_delrcpt(ctx_, bracketed.data()) == MI_SUCCESS;
  }
  bool addHeader(const std::string& name, const std::string& value) override {
    return smfi_addheader(ctx_, text(name), text(value)) == MI_SUCCESS;
  }
  bool changeHeader(const std::string& name, int index, const std::string& value) override {
    return smfi_chgheader(ctx_, text(name), index, value.empty() ? nullptr : text(value)) == MI_SUCCESS;
  }
  bool prependHeader(const std::string& name, const std::string& value) override {
    return smfi_insheader(ctx_, 0, text(name), text(value)) == MI_SUCCESS;
  }
  bool replaceBody(const std::string& body) override {
    // libmilter sends it in packets of at most 64 KiB.
    auto* data = reinterpret_cast<unsigned char*>(const_cast<char*>(body.data()));
    return smfi_replacebody(ctx_, data, static_cast<int>(body.size())) == MI_SUCCESS;
  }

 private:
  static char* text(const std::string& s) { return const_cast<char*>(s.c_str()); }
  SMFICTX* ctx_;
};

// Everything decided at end of headers, so that DKIM sees the final headers
// before the body chunks; acted upon at end of message.
struct Prepared {
  bool no_account = false;         // local_submission decides, nothing else runs
  std::optional<Error> redis_error;  // before the plan: on_redis_failure alone decides
  std::string account, key_id;
  Event base;
  std::vector<std::string> suppressed, kept;
  std::vector<std::string> suppression_rule;  // per suppressed recipient
  MessageFacts facts;
  MessagePlan plan;
  std::vector<std::unique_ptr<DkimSigner>> signers;
  std::vector<DkimEntry> keys;  // what `signers` sign with (to sign a re-encoded body anew)
  LineLengthScanner lines;     // the body's line lengths (long_lines)
  // long_lines = encode, for mail that is delivered: the body as received,
  // re-encoded at end of message when a line passes 998 octets.
  std::unique_ptr<BodyCopy> body;
  std::string dkim_error;  // set when signing failed; dkim_on_error decides
  std::optional<Error> dkim_keys_error;  // the keys could not be read: on_redis_failure decides
  bool dkim_missing = false;  // no key for the domain
  std::string rewritten_from_domain;  // EMPTY-FROM rewritten: the default sender's domain
  std::string default_domain;         // signs when the From domain has no key (defaultSigningDomain)
  SigningAccount signing;             // whose keys, and which keys no account owns, it may sign with
};

std::string fromDomain(const MessageFacts& facts) {
  return facts.from ? facts.from->address.substr(facts.from->address.rfind('@') + 1) : "";
}

// A signer per key of p.keys, fed `final_headers`; none when one fails.
Status startSigners(Prepared& p, const HeaderList& final_headers) {
  p.signers.clear();
  for (const auto& key : p.keys) {
    auto signer = DkimSigner::start(*g_context->dkim, key);
    Status st = signer ? okStatus() : Status(signer.error());
    for (size_t i = 0; st && i < final_headers.size(); ++i) {
      st = (*signer)->header(final_headers[i].first, final_headers[i].second);
    }
    if (st) st = (*signer)->endOfHeaders();
    if (!st) {
      p.signers.clear();
      return st;
    }
    p.signers.push_back(std::move(*signer));
  }
  return okStatus();
}

// The keys that sign a message the plan delivers (p.keys), or why none do.
// `dkim_version` is dkim:version as the account load read it: keys in the
// cache cost no round trip.
void chooseKeys(Prepared& p, RedisConn& redis, const std::string& dkim_version) {
  // EMPTY-FROM signs with dkim_default_domain; a From rewritten to the
  // account's default sender with that sender's domain.
  std::string domain = fromDomain(p.facts);
  if (p.plan.rule == "empty_from=rewrite") domain = p.rewritten_from_domain;
  else if (!p.facts.from) domain.clear();
  // The account's own default signing domain wins over the server's.
  const std::string& default_domain = p.default_domain;
  std::vector<std::string> domains = signingDomains(domain, default_domain);
  if (domains.empty()) {
    p.dkim_missing = true;
    return;
  }
  auto loaded = g_context->dkim_keys->keysFor(redis, domains, &dkim_version);
  if (!loaded) {
    p.dkim_keys_error = loaded.error();
    return;
  }
  p.keys = selectSigningKeys(domain, *loaded, default_domain, p.signing);
  if (p.keys.empty()) p.dkim_missing = true;
}

void prepare(SMFICTX* ctx, Connection& c) {
  auto p = std::make_unique<Prepared>();
  const Config& config = *c.config;
  std::string qid = queueId(ctx);
  std::tie(p->account, p->key_id) = splitAuthUser(c.msg.auth_user);
  // Non-SMTP mail never belongs to an account, even when an account's
  // allowed network holds 127.0.0.1: any local user could send it.
  if (p->account.empty() && c.non_smtp) {
    p->no_account = true;
    c.prepared = std::move(p);
    return;
  }
  // A connection only for the reads (account, then keys not cached): never
  // while the signers start, nor between callbacks.
  auto acquired = g_context->redis->acquire();
  if (!acquired) {
    p->redis_error = acquired.error();
    c.prepared = std::move(p);
    return;
  }
  std::optional<RedisPool::Lease> lease(std::move(*acquired));
  RedisConn& redis = **lease;
  if (p->account.empty() && !c.client_ip.empty()) {
    // No AUTH: the client may send from an account's allowed network.
    auto pinned = g_context->store->accountForAddress(redis, c.client_ip);
    if (!pinned) p->redis_error = pinned.error();
    else p->account = pinned->value_or("");
  }
  int64_t now = nowMillis();
  p->facts = extractFacts(c.msg.headers, config, now);
  // The fields past the cap were not kept: a check over the rest could pass
  // a second From hidden behind them.
  if (c.msg.too_many_headers) p->facts.header_verdict = tooManyHeaderFields();
  MessageAccount data;
  if (!p->redis_error && !p->account.empty()) {
    auto loaded = g_context->store->loadMessageAccount(redis, p->account, p->key_id, p->facts.from_domains,
                                                       p->facts.campaign, c.msg.rcpts);
    if (!loaded) p->redis_error = loaded.error();
    else data = std::move(*loaded);
  }
  p->no_account = !p->redis_error && p->account.empty();
  if (p->redis_error || p->no_account) {
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
  // stopped or bounced are removed and recorded as suppressed, unless the
  // message rules refuse the whole message; so are, in every mode, those
  // unsubscribed from the message's campaign.
  for (const auto& rcpt : c.msg.rcpts) {
    Verdict v = data.policy.suppression == Suppression::AcceptAndDrop ? checkRecipient(rcpt, data.policy) : dunno();
    if (v.rule.empty()) v = checkCampaignUnsubscribed(rcpt, data.policy);
    (v.rule.empty() ? p->kept : p->suppressed).push_back(rcpt);
    if (!v.rule.empty()) p->suppression_rule.push_back(v.rule);
  }
  std::string hostname = c.hostname.empty() ? localHostname() : c.hostname;
  p->plan = decideMessage(p->facts, c.msg.headers, p->account, data, p->kept, config, now, hostname, qid);
  p->base.message_id = p->plan.message_id;
  p->rewritten_from_domain = data.default_sender.substr(data.default_sender.rfind('@') + 1);
  p->default_domain = defaultSigningDomain(data, config);
  // Keys no account owns sign only for a domain the account was given: a
  // verified sending domain (not a parent it was not given), its default
  // sender's domain, dkim_domain, or the server's dkim_default_domain.
  p->signing = signingAccount(p->account, data, config);
  if (p->plan.verdict.action == Action::Dunno && p->plan.discard.empty() && !p->kept.empty()) {
    chooseKeys(*p, redis, data.dkim_version);
    lease.reset();
    if (!p->keys.empty()) {
      if (Status st = startSigners(*p, p->plan.headers); !st) p->dkim_error = st.error().message;
    }
    // Bounded by the largest message the account may send (the policy
    // refuses a larger one at end of data).
    uint64_t limit = data.policy.limits.size ? data.policy.limits.size : config.max_message_size;
    if (config.long_lines == LongLines::Encode) p->body = std::make_unique<BodyCopy>(limit);
  }
  c.prepared = std::move(p);
}

sfsistat onEoh(SMFICTX* ctx) {
  return collecting(ctx, "eoh", [&] { prepare(ctx, ensureConn(ctx)); });
}

sfsistat onBody(SMFICTX* ctx, unsigned char* chunk, size_t len) {
  return collecting(ctx, "body", [&] {
    Connection& c = ensureConn(ctx);
    if (!c.prepared || c.prepared->no_account || c.prepared->redis_error) return;
    Prepared& p = *c.prepared;
    p.lines.feed(chunk, len);
    if (p.body) p.body->append(chunk, len);
    // A long line: this body is refused or re-encoded and signed anew.
    if (p.lines.tooLong()) p.signers.clear();
    for (auto& signer : p.signers) {
      if (Status st = signer->body(chunk, len); !st) {
        p.dkim_error = st.error().message;
        p.signers.clear();
        return;
      }
    }
  });
}

// Mail without an account: local_submission passes it untouched (no rules,
// no signature, no record: no account owns it; this line is its record) or
// refuses it.
sfsistat onNoAccount(SMFICTX* ctx, const Connection& c, const std::string& qid) {
  Verdict v = checkLocalSubmission(*c.config);
  if (v.action == Action::Reject) {
    MG_LOG_INFO("%s: reject: END-OF-MESSAGE from %s: %s; from=<%s> nrcpt=%zu rule=%s", qid.c_str(),
                printable(c.client).c_str(), v.reply.c_str(), printable(c.msg.sender).c_str(), c.msg.rcpts.size(),
                v.rule.c_str());
    setReply(ctx, v.reply);
    return SMFIS_REJECT;
  }
  MG_LOG_INFO("%s: local: from=<%s> client=%s nrcpt=%zu; no account: passed untouched and unsigned (%s)",
              qid.c_str(), printable(c.msg.sender).c_str(), printable(c.client).c_str(), c.msg.rcpts.size(),
              v.rule.c_str());
  return SMFIS_CONTINUE;
}

// Refuses the whole message: every envelope recipient is recorded with the
// refusal (best effort: a lost record does not change the answer).
sfsistat refuse(SMFICTX* ctx, const Connection& c, const Prepared& p, const std::string& qid, const Verdict& verdict) {
  std::vector<Event> events;
  for (const auto& rcpt : c.msg.rcpts) {
    Event e = p.base;
    e.rcpt = rcpt;
    setRefusal(e, verdict.reply);
    events.push_back(std::move(e));
  }
  if (Status st = writeRecords(*c.config, events, nullptr); !st) {
    countUnrecorded(events.size(), st.error());
    MG_LOG_INFO("%s: refusal without outcome record: %s", qid.c_str(), st.error().message.c_str());
  }
  MG_LOG_INFO("%s: %s: END-OF-MESSAGE from %s: %s; from=<%s> header_from=<%s> account=%s key=%s campaign=%s rule=%s",
              qid.c_str(), verdict.action == Action::Reject ? "reject" : "tempfail", printable(c.client).c_str(),
              verdict.reply.c_str(), printable(c.msg.sender).c_str(), printable(p.base.from).c_str(),
              printable(p.account).c_str(), printable(p.key_id).c_str(), printable(p.base.campaign).c_str(),
              verdict.rule.c_str());
  setReply(ctx, verdict.reply);
  return verdict.action == Action::Reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
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
    if (p.no_account) return onNoAccount(ctx, c, qid);
    if (p.redis_error) return onRedisFailure(ctx, c, qid, p.account, *p.redis_error);
    // From here on a plan exists: without Redis it is still carried out and
    // only its record is lost (on_redis_failure = accept). A connection is
    // taken for the record alone, after the signatures.
    std::vector<Event> events;
    auto addEvent = [&](const std::string& rcpt, const std::string& status, const std::string& code,
                        const std::string& text) {
      Event e = p.base;
      e.rcpt = rcpt;
      e.status = status;
      e.code = code;
      e.text = text;
      events.push_back(std::move(e));
    };
    auto record = [&](const QueueRecord* queue) { return writeRecords(config, events, queue); };

    const MessagePlan& plan = p.plan;
    if (!p.dkim_error.empty()) MG_LOG_WARN("%s: dkim: %s", qid.c_str(), p.dkim_error.c_str());
    EndOfMessage end = finishMessage(plan, p.kept.empty(),
                                     {p.dkim_keys_error.has_value(), p.dkim_missing, !p.dkim_error.empty()}, config);
    if (end.finish == Finish::Refuse) return refuse(ctx, c, p, qid, end.refusal);
    if (end.finish == Finish::RedisTempfail) return onRedisFailure(ctx, c, qid, p.account, *p.dkim_keys_error);
    if (p.lines.tooLong() && config.long_lines == LongLines::Reject) {
      return refuse(ctx, c, p, qid, longLinesRefusal());
    }
    auto addSuppressed = [&] {
      for (size_t i = 0; i < p.suppressed.size(); ++i) {
        MG_LOG_INFO("%s: suppressed: to=<%s> account=%s", qid.c_str(), printable(p.suppressed[i]).c_str(),
                    printable(p.account).c_str());
        addEvent(p.suppressed[i], "suppressed", "", p.suppression_rule[i]);
      }
    };
    if (end.finish == Finish::DiscardSuppressed) {
      addSuppressed();
      if (Status st = record(nullptr); !st) return onRedisFailure(ctx, c, qid, p.account, st.error(), SMFIS_DISCARD);
      MG_LOG_INFO("%s: discard: no recipient left after suppression; account=%s", qid.c_str(),
                  printable(p.account).c_str());
      return SMFIS_DISCARD;
    }
    if (p.dkim_keys_error && plan.discard.empty()) {
      MG_LOG_WARN("%s: dkim: keys unavailable, sending unsigned (on_redis_failure = accept): %s", qid.c_str(),
                  p.dkim_keys_error->message.c_str());
    }
    std::string dkim_note = end.dkim_note;
    std::string long_lines_note;
    if (!plan.folded_headers.empty()) {
      std::string names;
      for (const auto& n : plan.folded_headers) names += (names.empty() ? "" : ",") + printable(n);
      long_lines_note = " folded=" + names;
    }
    if (plan.discard.empty()) {
      std::vector<HeaderEdit> edits = plan.edits;
      std::optional<std::string> new_body;
      if (p.lines.tooLong()) {
        // long_lines = encode: the body re-encoded from its copy, signed anew.
        Result<std::string> body = p.body ? p.body->contents()
                                          : Result<std::string>(Error{Error::Kind::Invalid, "no copy"});
        if (!body && p.body && !p.body->failure().empty()) {
          MG_LOG_WARN("%s: tempfail: END-OF-MESSAGE from %s: %s; from=<%s> account=%s reason=long lines, body copy "
                      "lost: %s",
                      qid.c_str(), printable(c.client).c_str(), kInternalError, printable(c.msg.sender).c_str(),
                      printable(p.account).c_str(), body.error().message.c_str());
          setReply(ctx, kInternalError);
          return SMFIS_TEMPFAIL;
        }
        if (!body) {
          MG_LOG_INFO("%s: long lines: body of %llu octets over the size limit, not re-encoded", qid.c_str(),
                      static_cast<unsigned long long>(p.body ? p.body->size() : 0));
          return refuse(ctx, c, p, qid, longLinesRefusal("long_lines_too_big"));
        }
        BodyReencoding re = reencodeLongLines(plan.headers, *body);
        if (re.verdict.action != Action::Dunno) {
          MG_LOG_INFO("%s: long lines: body not re-encoded: %s", qid.c_str(), re.reason.c_str());
          return refuse(ctx, c, p, qid, re.verdict);
        }
        edits.insert(edits.end(), re.edits.begin(), re.edits.end());
        long_lines_note += " reencoded=" + re.parts;
        if (!p.keys.empty() && p.dkim_error.empty()) {
          Status st = startSigners(p, applyHeaderEdits(plan.headers, re.edits));
          for (size_t i = 0; st && i < p.signers.size(); ++i) {
            st = p.signers[i]->body(reinterpret_cast<const unsigned char*>(re.body.data()), re.body.size());
          }
          if (!st) {
            MG_LOG_WARN("%s: dkim: %s", qid.c_str(), st.error().message.c_str());
            p.signers.clear();
            EndOfMessage failed = finishMessage(plan, false, {false, false, true}, config);
            if (failed.finish == Finish::Refuse) return refuse(ctx, c, p, qid, failed.refusal);
            dkim_note = failed.dkim_note;
          }
        }
        new_body = std::move(re.body);
      }
      std::vector<std::string> signatures;
      std::string signed_with;
      for (auto& signer : p.signers) {
        auto sig = signer->finish();
        if (!sig) {
          // The same dkim_on_error decision as a failure before the body.
          MG_LOG_WARN("%s: dkim: %s", qid.c_str(), sig.error().message.c_str());
          EndOfMessage failed = finishMessage(plan, false, {false, false, true}, config);
          if (failed.finish == Finish::Refuse) return refuse(ctx, c, p, qid, failed.refusal);
          dkim_note = failed.dkim_note;
          continue;
        }
        signatures.push_back(std::move(*sig));
        signed_with += " dkim=" + signer->key().domain + "/" + signer->key().selector;
      }
      std::vector<std::string> removals = p.suppressed;
      removals.insert(removals.end(), plan.sink_rcpts.begin(), plan.sink_rcpts.end());
      MilterEditor mta(ctx);
      EditOutcome edited = applyEdits(mta, removals, edits, signatures, new_body ? &*new_body : nullptr);
      if (edited.tempfail()) {
        // Postfix will not queue the message as planned: no outcome record.
        MG_LOG_WARN("%s: tempfail: END-OF-MESSAGE from %s: %s; from=<%s> account=%s reason=the MTA refused a "
                    "change (%s); not recorded",
                    qid.c_str(), printable(c.client).c_str(), kInternalError, printable(c.msg.sender).c_str(),
                    printable(p.account).c_str(), printable(edited.refused).c_str());
        setReply(ctx, kInternalError);
        return SMFIS_TEMPFAIL;
      }
      if (!signatures.empty()) dkim_note += signed_with;
    }
    addSuppressed();
    for (const auto& rcpt : plan.sink_rcpts) addEvent(rcpt, "sink", "250", "");
    const std::string& status = plan.discard == "sandbox" ? plan.discard : "accepted";
    for (const auto& rcpt : plan.deliver_rcpts) addEvent(rcpt, status, "250", "");
    QueueRecord queue{qid, p.account, p.key_id, p.facts.campaign, p.facts.letter_id, p.base.from,
                      sha256Hex(p.facts.subject).substr(0, 16), p.base.time_ms,
                      static_cast<unsigned>(plan.deliver_rcpts.size()), plan.message_id, plan.deliver_rcpts};
    sfsistat planned = plan.discard.empty() ? SMFIS_CONTINUE : SMFIS_DISCARD;
    if (Status st = record(plan.discard.empty() ? &queue : nullptr); !st) {
      return onRedisFailure(ctx, c, qid, p.account, st.error(), planned);
    }
    if (!plan.discard.empty()) {
      MG_LOG_INFO("%s: discard (%s): from=<%s> nrcpt=%zu account=%s key=%s campaign=%s", qid.c_str(),
                  plan.discard.c_str(), printable(c.msg.sender).c_str(), p.kept.size(), printable(p.account).c_str(),
                  printable(p.key_id).c_str(), printable(p.base.campaign).c_str());
      return planned;
    }
    std::string unsubscribe_note = plan.unsubscribe.empty() ? "" : " unsubscribe=" + plan.unsubscribe;
    MG_LOG_INFO("%s: accepted: from=<%s> nrcpt=%zu account=%s key=%s header_from=<%s> campaign=%s letter=%s%s%s%s%s%s",
                qid.c_str(), printable(c.msg.sender).c_str(), plan.deliver_rcpts.size(), printable(p.account).c_str(),
                printable(p.key_id).c_str(), printable(p.base.from).c_str(), printable(p.base.campaign).c_str(),
                printable(p.base.letter_id).c_str(), plan.rule.empty() ? "" : " ", plan.rule.c_str(),
                long_lines_note.c_str(), unsubscribe_note.c_str(), dkim_note.c_str());
    return planned;
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
