// dkim_signer.cc — DKIM signatures on OpenSSL EVP: the signed and
// oversigned header lists of DESIGN.md, the DKIM-Signature folded exactly as
// libopendkim 2.11 folded it (so that signatures and their hashes stay the
// same), RSA-SHA256 and Ed25519-SHA256 over keys parsed once; the key cache
// (keys read with their dkim:version in one transaction); plus the key choice.
//
// Deliberate differences from libopendkim (RFC 6376 is followed instead):
// VT and FF in header values are kept (libopendkim took them for
// whitespace), a CR not followed by LF in the body is content (libopendkim
// dropped it), and a body without a final CRLF gets one (libopendkim
// refused to sign it). Postfix hands the milter none of these.
#include "mailgate/dkim_signer.h"

#include <algorithm>
#include <array>
#include <ctime>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "mailgate/address.h"
#include "mailgate/crypto.h"
#include "mailgate/dkim_keys.h"

namespace mailgate {
namespace {

constexpr std::array<std::string_view, 13> kSignedHeaders = {
    "from",         "reply-to",     "to",          "cc",          "subject",
    "date",         "message-id",   "mime-version", "content-type", "content-transfer-encoding",
    "feedback-id",  "list-unsubscribe", "list-unsubscribe-post"};
// Listed once more than present, so that a copy added later breaks the signature.
constexpr std::array<std::string_view, 4> kOversignedHeaders = {"from", "to", "subject", "date"};

// libopendkim's line width, and what "DKIM-Signature: " takes of the first line.
constexpr size_t kMargin = 75;
constexpr size_t kFirstColumn = 16;

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

bool isSigned(std::string_view lower_name) {
  return std::find(kSignedHeaders.begin(), kSignedHeaders.end(), lower_name) != kSignedHeaders.end();
}

std::string keyName(const DkimEntry& key) { return key.domain + "/" + key.selector; }

Error unreadable(const DkimEntry& key) {
  return Error{Error::Kind::Invalid, "key " + keyName(key) + ": unreadable private key (not a PEM " +
                                         (key.algo.empty() ? std::string("DKIM") : key.algo) + " key)"};
}

// The tags ("v=1;" ... "b=...") joined as libopendkim's dkim_getsighdr_d
// joins them at its margin: a tag that does not fit starts a new line (LF
// TAB); a wrapped h= breaks after colons, a wrapped b= or bh= at the margin
// (LF TAB SP); an RSA b= always starts a line of its own. `rsa_b64` is the
// base64 length of an RSA signature, 0 for Ed25519.
std::string foldTags(const std::vector<std::string>& tags, size_t rsa_b64) {
  std::string out;
  size_t col = kFirstColumn;
  for (size_t i = 0; i < tags.size(); ++i) {
    std::string_view t = tags[i];
    std::string_view name = t.substr(0, t.find('='));
    if (i == 0) {
      out += t;
      col += t.size();
      continue;
    }
    bool force = rsa_b64 > 0 && name == "b" && col + name.size() + rsa_b64 + 1 >= kMargin;
    if (!force && col + t.size() <= kMargin) {
      out += ' ';
      out += t;
      col += 1 + t.size();
      continue;
    }
    out += "\n\t";
    col = 8;
    if (name == "h") {
      bool first = true;
      for (size_t pos = 0; pos < t.size();) {
        size_t colon = t.find(':', pos);
        std::string_view part = t.substr(pos, colon == std::string_view::npos ? std::string_view::npos : colon - pos);
        pos = colon == std::string_view::npos ? t.size() : colon + 1;
        if (part.empty()) continue;
        if (!first && col + part.size() + 1 > kMargin) {
          out += ":\n\t ";
          col = 9;
        } else if (!first) {
          out += ':';
          col += 1;
        }
        out += part;
        col += part.size();
        first = false;
      }
    } else if (name == "b" || name == "bh") {
      std::string_view value = t.substr(name.size() + 1);
      out.append(t.substr(0, name.size() + 1));
      col += name.size() + 1;
      if (!value.empty()) {
        out += value[0];
        col += 1;
        value.remove_prefix(1);
      }
      while (!value.empty()) {
        if (col >= kMargin) {
          out += "\n\t ";
          col = 9;
        }
        size_t n = std::min(kMargin - col, value.size());
        out.append(value.substr(0, n));
        col += n;
        value.remove_prefix(n);
      }
    } else {
      out += t;
      col += t.size();
    }
  }
  return out;
}

std::string b64(const unsigned char* data, size_t len) {
  return base64Encode(std::string_view(reinterpret_cast<const char*>(data), len));
}

}  // namespace

DkimLibrary::DkimLibrary(uint64_t expire_seconds, Clock clock)
    : expire_seconds_(expire_seconds), clock_(std::move(clock)), ok_(Sha256().ok()) {}

uint64_t DkimLibrary::now() const { return clock_ ? clock_() : static_cast<uint64_t>(time(nullptr)); }

Status parseDkimPrivateKey(DkimEntry& key) {
  if (key.parsed && key.pem.empty()) return okStatus();  // parsed before
  int want = key.algo == "rsa-sha256" ? EVP_PKEY_RSA : key.algo == "ed25519-sha256" ? EVP_PKEY_ED25519 : 0;
  std::shared_ptr<EVP_PKEY> parsed;
  if (want != 0 && !key.pem.empty()) parsed = readPrivateKeyPem(key.pem);
  OPENSSL_cleanse(key.pem.data(), key.pem.size());
  key.pem.clear();
  EVP_PKEY* raw = parsed.get();
  if (!parsed || EVP_PKEY_get_base_id(raw) != want) {
    key.parsed.reset();
    return unreadable(key);
  }
  if (want == EVP_PKEY_RSA && EVP_PKEY_get_bits(raw) < 1024) {  // libopendkim's minimum, and RFC 8301's
    key.parsed.reset();
    return Error{Error::Kind::Invalid, "key " + keyName(key) + ": RSA key of " +
                                           std::to_string(EVP_PKEY_get_bits(raw)) + " bits, at least 1024 needed"};
  }
  key.parsed = std::move(parsed);
  return okStatus();
}

DkimSigner::DkimSigner(const DkimLibrary& lib, const DkimEntry& key)
    : key_(key), time_(lib.now()), expire_(lib.expireSeconds()) {}

Result<std::unique_ptr<DkimSigner>> DkimSigner::start(const DkimLibrary& lib, const DkimEntry& key) {
  if (!key.parsed) return unreadable(key);
  std::unique_ptr<DkimSigner> s(new DkimSigner(lib, key));
  if (!s->body_.ok() || !s->header_sha_.ok()) return s->failure("SHA-256 unavailable");
  return s;
}

Error DkimSigner::failure(const std::string& what) const {
  return Error{Error::Kind::Invalid, "signing " + keyName(key_) + ": " + what};
}

Status DkimSigner::header(std::string_view name, std::string_view value) {
  if (headers_done_) return failure("header after the end of headers");
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (!isSigned(lower)) return okStatus();
  Field f{std::move(lower), {}};
  appendRelaxedHeader(f.canonical, name, value);
  fields_.push_back(std::move(f));
  if (!header_list_.empty()) header_list_ += ':';
  header_list_ += name;
  return okStatus();
}

Status DkimSigner::endOfHeaders() {
  if (headers_done_) return failure("end of headers twice");
  headers_done_ = true;
  if (std::none_of(fields_.begin(), fields_.end(), [](const Field& f) { return f.name == "from"; })) {
    failed_ = true;
    return failure("required header \"from\" not found");
  }
  // h= names each present signed field in message order; the fields are
  // hashed in h= order, the n-th occurrence of a name taking the n-th field
  // of that name from the bottom (RFC 6376 §5.4.2).
  std::vector<std::string_view> order;
  for (const auto& f : fields_) order.push_back(f.name);
  for (std::string_view o : kOversignedHeaders) {
    header_list_ += ':';
    header_list_ += o;
    order.push_back(o);
  }
  std::vector<bool> used(fields_.size(), false);
  for (std::string_view name : order) {
    for (size_t i = fields_.size(); i-- > 0;) {
      if (!used[i] && fields_[i].name == name) {
        used[i] = true;
        header_sha_.update(fields_[i].canonical);
        break;
      }
    }
  }
  std::vector<Field>().swap(fields_);
  return okStatus();
}

Status DkimSigner::body(const unsigned char* data, size_t len) {
  if (!headers_done_ || failed_) return failure("body before the end of headers");
  body_.update(data, len);
  return okStatus();
}

Result<std::string> DkimSigner::finish() {
  if (!headers_done_ || failed_) return failure("signature requested before the end of headers");
  failed_ = true;  // one signature per signer
  Sha256Digest bh = body_.finish();
  if (!body_.ok()) return failure("SHA-256 failed");
  EVP_PKEY* pkey = key_.parsed.get();
  bool rsa = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;
  std::vector<std::string> tags{"v=1;",
                                "a=" + key_.algo + ";",
                                "c=relaxed/relaxed;",
                                "d=" + key_.domain + ";",
                                "s=" + key_.selector + ";",
                                "t=" + std::to_string(time_) + ";"};
  if (expire_ > 0) tags.push_back("x=" + std::to_string(time_ + expire_) + ";");
  tags.push_back("bh=" + b64(bh.data(), bh.size()) + ";");
  tags.push_back("h=" + header_list_ + ";");
  tags.push_back("b=");
  size_t rsa_b64 = rsa ? (static_cast<size_t>(EVP_PKEY_get_size(pkey)) + 2) / 3 * 4 : 0;
  std::string unsigned_header;
  appendRelaxedHeader(unsigned_header, "DKIM-Signature", foldTags(tags, rsa_b64), false);
  header_sha_.update(unsigned_header);
  header_hash_ = header_sha_.finish();
  if (!header_sha_.ok()) return failure("SHA-256 failed");

  std::vector<unsigned char> sig;
  size_t len = 0;
  if (rsa) {
    // RSASSA-PKCS1-v1_5 over the SHA-256 already computed (what
    // EVP_DigestSign with SHA-256 computes over the header data).
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(pkey, nullptr));
    bool ok = ctx && EVP_PKEY_sign_init(ctx.get()) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) == 1 &&
              EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) == 1 &&
              EVP_PKEY_sign(ctx.get(), nullptr, &len, header_hash_.data(), header_hash_.size()) == 1;
    if (ok) {
      sig.resize(len);
      ok = EVP_PKEY_sign(ctx.get(), sig.data(), &len, header_hash_.data(), header_hash_.size()) == 1;
    }
    if (!ok) return failure("RSA signature failed");
  } else {
    // RFC 8463: PureEdDSA over the SHA-256 of the header data.
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    bool ok = ctx && EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey) == 1 &&
              EVP_DigestSign(ctx.get(), nullptr, &len, header_hash_.data(), header_hash_.size()) == 1;
    if (ok) {
      sig.resize(len);
      ok = EVP_DigestSign(ctx.get(), sig.data(), &len, header_hash_.data(), header_hash_.size()) == 1;
    }
    if (!ok) return failure("Ed25519 signature failed");
  }
  tags.back() = "b=" + b64(sig.data(), len);
  return foldTags(tags, rsa_b64);
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
  out.clear();  // all of them as of `fetched`
  for (size_t i = 0; i < domains.size(); ++i) {
    if (out.contains(domains[i])) continue;
    auto entries = parseDkimHash(domains[i], (*r)->element[i + 1]);
    // Parsed here once per dkim:version; an unreadable key stays listed,
    // unparsed, and fails when a message is signed with it.
    for (auto& e : entries) (void)parseDkimPrivateKey(e);
    out[domains[i]] = std::move(entries);
  }
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
