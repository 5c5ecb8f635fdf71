// dkim_signer.cc — libopendkim glue: the process-wide DKIM_LIB (relaxed/
// relaxed, SHA-256, the signed and oversigned header lists of DESIGN.md) and
// per-message signing handles, freed with RAII; the key cache (keys read
// with their dkim:version in one transaction); plus the key choice.
#include "mailgate/dkim_signer.h"

#include <algorithm>
#include <cstring>
#include <sys/types.h>

#define _Bool bool
#include <dkim.h>
#undef _Bool

#include "mailgate/address.h"

namespace mailgate {
namespace {

const char* kSignedHeaders[] = {"from",         "reply-to",     "to",          "cc",
                                "subject",      "date",         "message-id",  "mime-version",
                                "content-type", "content-transfer-encoding", "feedback-id", "list-unsubscribe",
                                "list-unsubscribe-post", nullptr};
const char* kOversignedHeaders[] = {"from", "to", "subject", "date", nullptr};

}  // namespace

DkimLibrary::DkimLibrary(uint64_t expire_seconds) {
  lib_ = dkim_init(nullptr, nullptr);
  if (lib_ == nullptr) return;
  bool ok = (expire_seconds == 0 || dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_SIGNATURETTL, &expire_seconds,
                                                 sizeof expire_seconds) == DKIM_STAT_OK) &&
            dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, static_cast<void*>(kSignedHeaders),
                         sizeof(char**)) == DKIM_STAT_OK &&
            dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, static_cast<void*>(kOversignedHeaders),
                         sizeof(char**)) == DKIM_STAT_OK;
  if (!ok) {
    dkim_close(lib_);
    lib_ = nullptr;
  }
}

DkimLibrary::~DkimLibrary() {
  if (lib_ != nullptr) dkim_close(lib_);
}

Result<std::unique_ptr<DkimSigner>> DkimSigner::start(DkimLibrary& lib, const DkimEntry& key, const std::string& qid) {
  DKIM_STAT st = DKIM_STAT_OK;
  dkim_alg_t alg = key.algo == "ed25519-sha256" ? DKIM_SIGN_ED25519SHA256 : DKIM_SIGN_RSASHA256;
  DKIM* d = dkim_sign(lib.get(), reinterpret_cast<const unsigned char*>(qid.c_str()), nullptr,
                      reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(key.pem.c_str())),
                      reinterpret_cast<const unsigned char*>(key.selector.c_str()),
                      reinterpret_cast<const unsigned char*>(key.domain.c_str()), DKIM_CANON_RELAXED,
                      DKIM_CANON_RELAXED, alg, -1, &st);
  if (d == nullptr) {
    return Error{Error::Kind::Invalid, "dkim_sign " + key.domain + "/" + key.selector + ": " +
                                           dkim_getresultstr(st)};
  }
  return std::unique_ptr<DkimSigner>(new DkimSigner(d, key));
}

DkimSigner::~DkimSigner() { dkim_free(handle_); }

Error DkimSigner::failure(const char* step, int status) const {
  const char* detail = dkim_geterror(handle_);
  return Error{Error::Kind::Invalid, std::string(step) + " " + key_.domain + "/" + key_.selector + ": " +
                                         dkim_getresultstr(status) + (detail ? std::string(" (") + detail + ")" : "")};
}

Status DkimSigner::header(std::string_view name, std::string_view value) {
  std::string field(name);
  field += ": ";
  for (char c : value) {
    if (c == '\n') field += '\r';
    field += c;
  }
  DKIM_STAT st = dkim_header(handle_, reinterpret_cast<unsigned char*>(field.data()), field.size());
  if (st != DKIM_STAT_OK) return failure("dkim_header", st);
  return okStatus();
}

Status DkimSigner::endOfHeaders() {
  DKIM_STAT st = dkim_eoh(handle_);
  if (st != DKIM_STAT_OK) return failure("dkim_eoh", st);
  return okStatus();
}

Status DkimSigner::body(const unsigned char* data, size_t len) {
  DKIM_STAT st = dkim_body(handle_, const_cast<unsigned char*>(data), len);
  if (st != DKIM_STAT_OK) return failure("dkim_body", st);
  return okStatus();
}

Result<std::string> DkimSigner::finish() {
  DKIM_STAT st = dkim_eom(handle_, nullptr);
  if (st != DKIM_STAT_OK) return failure("dkim_eom", st);
  unsigned char* sig = nullptr;
  size_t len = 0;
  st = dkim_getsighdr_d(handle_, strlen(DKIM_SIGNHEADER) + 2, &sig, &len);
  if (st != DKIM_STAT_OK) return failure("dkim_getsighdr_d", st);
  std::string v(reinterpret_cast<char*>(sig), len);
  std::erase(v, '\r');
  return v;
}

Result<std::map<std::string, std::vector<DkimEntry>>> DkimKeyCache::keysFor(RedisConn& redis,
                                                                           const std::vector<std::string>& domains,
                                                                           const std::string* version) {
  std::string current;
  if (version != nullptr) {
    current = *version;
  } else {
    auto got = redis.command({"GET", keys_.dkimVersion()});
    if (!got) return got.error();
    current = replyString(got->get());
  }
  std::map<std::string, std::vector<DkimEntry>> out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (current != version_) {
      cache_.clear();
      version_ = current;
    }
    bool cached = true;  // `domains` may name a domain twice
    for (const auto& d : domains) {
      auto it = cache_.find(d);
      if (it == cache_.end()) {
        cached = false;
        break;
      }
      out[d] = it->second;
    }
    if (cached) return out;
  }
  // The version and the keys in one transaction, so the keys are those of
  // the version read with them; they are cached only if that is still the
  // cache's version (a `dkim remove` meanwhile must not leave the old key
  // cached under the new version).
  std::vector<Command> cmds{{"GET", keys_.dkimVersion()}};
  for (const auto& d : domains) cmds.push_back({"HGETALL", keys_.dkim(d)});
  auto r = transaction(redis, cmds);
  if (!r) return r.error();
  std::string fetched = replyString((*r)->element[0]);
  for (size_t i = 0; i < domains.size(); ++i) out[domains[i]] = parseDkimHash(domains[i], (*r)->element[i + 1]);
  if (after_fetch_) after_fetch_();
  std::lock_guard<std::mutex> lock(mutex_);
  if (fetched != version_) return out;  // right for this message, stale for the next
  if (cache_.size() > 10000) cache_.clear();
  for (const auto& [d, entries] : out) cache_[d] = entries;
  return out;
}

std::vector<DkimEntry> selectSigningKeys(const std::string& from_domain,
                                         const std::map<std::string, std::vector<DkimEntry>>& loaded,
                                         const std::string& default_domain, const SigningAccount& who) {
  auto usable = [&](const std::string& domain) {
    std::vector<DkimEntry> keys;
    auto it = loaded.find(domain);
    if (it == loaded.end()) return keys;
    for (const auto& k : it->second) {
      bool usable_key = k.account.empty() ? who.domains.contains(domain) : k.account == who.name;
      if (usable_key) keys.push_back(k);
    }
    return keys;
  };
  if (!from_domain.empty()) {
    std::vector<std::string> candidates{toLower(from_domain)};
    for (auto& p : parentDomains(candidates[0])) candidates.push_back(std::move(p));
    for (const auto& d : candidates) {
      if (auto keys = usable(d); !keys.empty()) return keys;
    }
  }
  if (!default_domain.empty()) return usable(toLower(default_domain));
  return {};
}

SigningAccount signingAccount(const std::string& account, const MessageAccount& data, const Config& config) {
  SigningAccount who;
  who.name = account;
  for (const auto& [domain, entry] : data.policy.domains) {
    if (entry.status == DomainStatus::Verified) who.domains.insert(domain);
  }
  std::string sender_domain = data.default_sender.substr(data.default_sender.rfind('@') + 1);
  for (const std::string& d : {sender_domain, data.dkim_domain, config.dkim_default_domain}) {
    if (!d.empty()) who.domains.insert(toLower(d));
  }
  return who;
}

std::string defaultSigningDomain(const MessageAccount& data, const Config& config) {
  return data.dkim_domain.empty() ? config.dkim_default_domain : data.dkim_domain;
}

std::vector<std::string> signingDomains(const std::string& from_domain, const std::string& default_domain) {
  std::vector<std::string> domains;
  if (!from_domain.empty()) {
    domains.push_back(toLower(from_domain));
    for (auto& parent : parentDomains(domains[0])) domains.push_back(std::move(parent));
  }
  if (!default_domain.empty()) domains.push_back(default_domain);
  return domains;
}

}  // namespace mailgate
