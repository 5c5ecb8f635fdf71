// fuzz_milter_message.cc — libFuzzer target for one message through the
// pure steps of mailgate-milter's callbacks (milter/callbacks.cc, in its
// order): header fields kept up to kMaxHeaderFields, the message rules at
// end of headers, DKIM signers fed the final header and the body in chunks,
// the line scanner and body copy, then end of message: finishMessage, long
// lines refused or re-encoded (GMime) and signed anew, the edits applied.
// Checks: every reply has the "ddd d.d.d text" shape setReply() cuts; what
// leaves has no line over 998 octets; the plan's header is its edits applied;
// a signature does not depend on how the body was chunked.
//
// Input: a first line of option letters (r long_lines=reject, j/w empty_from
// reject/rewrite, S sandbox key, B blocked campaign, k a sink recipient, a
// accept-and-drop with a stopped recipient, d dkim_required, x keep tag
// headers, digits seed the chunk sizes), then "Name: value" lines (a line
// starting with a blank continues the field, joined with LF as libmilter
// gives it), an empty line, and the body as libmilter streams it (CRLF).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/body_copy.h"
#include "mailgate/config.h"
#include "mailgate/dkim_keys.h"
#include "mailgate/dkim_signer.h"
#include "mailgate/long_lines.h"
#include "mailgate/message_edits.h"
#include "mailgate/mime_reencode.h"
#include "mailgate/rules_envelope.h"
#include "mailgate/rules_message.h"

using namespace mailgate;

namespace {

constexpr int64_t kNow = 1764633600000;  // 2025-12-02, fixed: the signatures are compared

// Records the changes; accepts every one.
class Recorder : public MessageEditor {
 public:
  bool removeRecipient(const std::string&) override { return true; }
  bool addHeader(const std::string& n, const std::string& v) override { return check(n, v); }
  bool changeHeader(const std::string& n, int, const std::string& v) override { return check(n, v); }
  bool prependHeader(const std::string& n, const std::string& v) override { return check(n, v); }
  bool replaceBody(const std::string& body) override {
    if (hasLongLine(body)) abort();
    return true;
  }

 private:
  static bool check(const std::string& name, const std::string& value) {
    if (headerHasLongLine(name, value)) abort();
    return true;
  }
};

const DkimLibrary& library() {
  static DkimLibrary lib(0, [] { return static_cast<uint64_t>(kNow / 1000); });
  return lib;
}

// One Ed25519 key for example.com, owned by no account (deterministic signatures).
const std::map<std::string, std::vector<DkimEntry>>& keys() {
  static const auto loaded = [] {
    auto generated = generateDkimKey("ed25519");
    if (!generated) abort();
    DkimEntry key{"example.com", "s1", "ed25519-sha256", "", "", generated->pem, 0, nullptr};
    if (!parseDkimPrivateKey(key)) abort();
    return std::map<std::string, std::vector<DkimEntry>>{{"example.com", {key}}};
  }();
  return loaded;
}

void checkReply(const Verdict& v) {
  const std::string& r = v.reply;
  if (r.size() < 10 || r[3] != ' ' || r[5] != '.' || r[7] != '.' || r[9] != ' ' || (r[0] != '4' && r[0] != '5')) abort();
}

std::vector<std::unique_ptr<DkimSigner>> startSigners(const std::vector<DkimEntry>& keys, const HeaderList& headers) {
  std::vector<std::unique_ptr<DkimSigner>> signers;
  for (const auto& key : keys) {
    auto signer = DkimSigner::start(library(), key);
    if (!signer) abort();
    Status st = okStatus();
    for (size_t i = 0; st && i < headers.size(); ++i) st = (*signer)->header(headers[i].first, headers[i].second);
    if (st) st = (*signer)->endOfHeaders();
    if (!st) return {};  // no From: dkim_error in the milter
    signers.push_back(std::move(*signer));
  }
  return signers;
}

void feedAll(std::vector<std::unique_ptr<DkimSigner>>& signers, std::string_view body) {
  for (auto& s : signers) {
    if (!s->body(reinterpret_cast<const unsigned char*>(body.data()), body.size())) abort();
  }
}

std::vector<std::string> finishAll(std::vector<std::unique_ptr<DkimSigner>>& signers) {
  std::vector<std::string> out;
  for (auto& s : signers) {
    auto sig = s->finish();
    if (!sig) abort();
    if (headerHasLongLine("DKIM-Signature", *sig)) abort();
    out.push_back(*sig);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Config base = parseConfig("", "fuzz.conf");
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t eol = in.find('\n');
  std::string_view opts = in.substr(0, eol);
  in = eol == std::string_view::npos ? std::string_view() : in.substr(eol + 1);
  auto has = [&](char c) { return opts.find(c) != std::string_view::npos; };
  uint32_t rng = 2166136261u;
  for (char c : opts) rng = (rng ^ static_cast<unsigned char>(c)) * 16777619u;

  Config config = base;
  if (has('r')) config.long_lines = LongLines::Reject;
  if (has('j')) config.empty_from = EmptyFromMode::Reject;
  if (has('w')) config.empty_from = EmptyFromMode::Rewrite;
  if (has('d')) config.dkim_required = true;
  if (has('x')) config.strip_tag_headers = false;
  if (has('k')) config.sink_recipients = {"sink@example.net"};
  MessageAccount account;
  account.policy.name = "acct";
  account.policy.exists = true;
  account.policy.state = AccountState::Active;
  account.policy.domains["example.com"] = DomainEntry{DomainStatus::Verified, true};
  account.default_sender = "news@example.com";
  account.sandbox = has('S');
  account.campaign_blocked = has('B');
  std::vector<std::string> rcpts{"a@example.org", "b@example.org"};
  if (has('k')) rcpts.push_back("sink@example.net");
  if (has('a')) {
    account.policy.suppression = Suppression::AcceptAndDrop;
    account.policy.stoplist.insert("b@example.org");
  }

  // Header fields, as onHeader keeps them.
  HeaderList headers;
  bool too_many = false;
  while (!in.empty()) {
    eol = in.find('\n');
    std::string_view line = in.substr(0, eol);
    in = eol == std::string_view::npos ? std::string_view() : in.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !headers.empty() && !too_many) {
      headers.back().second += "\n" + std::string(line);
      continue;
    }
    size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon), value;
    if (colon != std::string_view::npos) value = line.substr(colon + 1);
    while (!value.empty() && (value[0] == ' ' || value[0] == '\t')) value.remove_prefix(1);
    if (headers.size() < kMaxHeaderFields) headers.emplace_back(name, value);
    else too_many = true;
  }
  std::string_view body = in;

  // End of headers: prepare().
  MessageFacts facts = extractFacts(headers, config, kNow);
  if (too_many) facts.header_verdict = tooManyHeaderFields();
  std::vector<std::string> kept, suppressed;
  for (const auto& rcpt : rcpts) {
    Verdict v = account.policy.suppression == Suppression::AcceptAndDrop ? checkRecipient(rcpt, account.policy)
                                                                          : dunno();
    (v.rule.empty() ? kept : suppressed).push_back(rcpt);
  }
  MessagePlan plan = decideMessage(facts, headers, "acct", account, kept, config, kNow, "mx.example.net");
  if (plan.verdict.action != Action::Dunno) checkReply(plan.verdict);
  std::vector<DkimEntry> signing_keys;
  std::vector<std::unique_ptr<DkimSigner>> signers, whole;
  std::unique_ptr<BodyCopy> copy;
  bool dkim_missing = false, dkim_error = false;
  bool delivered = plan.verdict.action == Action::Dunno && plan.discard.empty() && !kept.empty();
  if (delivered) {
    // The refolding edits applied after the others equal all applied at once.
    if (applyHeaderEdits(headers, plan.edits) != plan.headers) abort();
    std::string domain = facts.from ? facts.from->address.substr(facts.from->address.rfind('@') + 1) : "";
    if (plan.rule == "empty_from=rewrite") domain = "example.com";
    std::string default_domain = defaultSigningDomain(account, config);
    signing_keys = selectSigningKeys(domain, keys(), default_domain, signingAccount("acct", account, config));
    dkim_missing = signing_keys.empty();
    signers = startSigners(signing_keys, plan.headers);
    whole = startSigners(signing_keys, plan.headers);
    dkim_error = !signing_keys.empty() && signers.empty();
    if (config.long_lines == LongLines::Encode) copy = std::make_unique<BodyCopy>(config.max_message_size);
  }

  // The body in chunks: onBody().
  LineLengthScanner lines;
  for (size_t pos = 0; pos < body.size();) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    size_t len = rng % 3 == 0 ? body.size() - pos : 1 + (rng >> 4) % (rng % 3 == 1 ? 7 : 300);
    len = std::min(len, body.size() - pos);
    const auto* chunk = reinterpret_cast<const unsigned char*>(body.data() + pos);
    pos += len;
    if (!delivered) continue;
    lines.feed(chunk, len);
    if (copy) copy->append(chunk, len);
    if (lines.tooLong()) signers.clear();
    for (auto& s : signers) {
      if (!s->body(chunk, len)) abort();
    }
  }
  if (delivered && !lines.tooLong() && !signers.empty()) {
    feedAll(whole, body);
    if (finishAll(signers) != finishAll(whole)) abort();  // chunking changed a signature
    signers = startSigners(signing_keys, plan.headers);
    feedAll(signers, body);
  }
  if (lines.tooLong() != hasLongLine(body) && delivered) abort();

  // End of message: onEom().
  EndOfMessage end = finishMessage(plan, kept.empty(), {false, dkim_missing, dkim_error}, config);
  if (end.finish == Finish::Refuse) checkReply(end.refusal);
  if (end.finish != Finish::Carry || !plan.discard.empty() || !delivered) return 0;
  if (lines.tooLong() && config.long_lines == LongLines::Reject) return 0;
  std::vector<HeaderEdit> edits = plan.edits;
  std::optional<std::string> new_body;
  if (lines.tooLong()) {
    if (!copy) abort();
    auto received = copy->contents();
    if (!received) return 0;  // over the size limit: refused
    if (*received != body) abort();
    BodyReencoding re = reencodeLongLines(plan.headers, *received);
    if (re.verdict.action != Action::Dunno) {
      checkReply(re.verdict);
      return 0;
    }
    if (hasLongLine(re.body)) abort();
    edits.insert(edits.end(), re.edits.begin(), re.edits.end());
    if (!signing_keys.empty() && !dkim_error) {
      signers = startSigners(signing_keys, applyHeaderEdits(plan.headers, re.edits));
      feedAll(signers, re.body);
    }
    new_body = std::move(re.body);
  }
  std::vector<std::string> signatures = finishAll(signers);
  for (const auto& [name, value] : applyHeaderEdits(headers, edits)) {
    // Only fields the plan refolded or added are bound to the limit; a
    // received field within it stays within it.
    if (headerHasLongLine(name, value)) abort();
  }
  std::vector<std::string> removals = suppressed;
  removals.insert(removals.end(), plan.sink_rcpts.begin(), plan.sink_rcpts.end());
  Recorder mta;
  EditOutcome edited = applyEdits(mta, removals, edits, signatures, new_body ? &*new_body : nullptr);
  if (edited.tempfail() || edited.signatures != signatures.size()) abort();
  return 0;
}
