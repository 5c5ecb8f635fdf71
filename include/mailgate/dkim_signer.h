// dkim_signer.h — DKIM signing on OpenSSL: one DkimLibrary per process
// (expiry, clock), one DkimSigner per message and key (RFC 6376
// relaxed/relaxed, rsa-sha256 and ed25519-sha256 per RFC 8463) fed the final
// headers at end of headers and the body in the chunks libmilter delivers;
// keys are parsed once, when the key cache loads them; selectSigningKeys()
// is the pure key choice.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/admin.h"
#include "mailgate/config.h"
#include "mailgate/dkim_canon.h"
#include "mailgate/rules_message.h"
#include "mailgate/result.h"

namespace mailgate {

// What every signature of the process shares. The header lists are those
// of DESIGN.md (signed, and oversigned against added copies).
class DkimLibrary {
 public:
  using Clock = std::function<uint64_t()>;  // seconds since the epoch (t=)
  // `expire_seconds` > 0 adds x= (signature expiry) to every signature;
  // `clock` (a test seam) replaces time().
  explicit DkimLibrary(uint64_t expire_seconds = 0, Clock clock = {});
  DkimLibrary(const DkimLibrary&) = delete;
  DkimLibrary& operator=(const DkimLibrary&) = delete;
  // False when OpenSSL offers no SHA-256.
  bool ok() const { return ok_; }
  uint64_t now() const;
  uint64_t expireSeconds() const { return expire_seconds_; }

 private:
  uint64_t expire_seconds_;
  Clock clock_;
  bool ok_;
};

// Parses key.pem into key.parsed (checking that the key type fits
// key.algo; RSA of at least 1024 bits), then wipes the PEM text; a key
// parsed before is left as it is. On error key.parsed stays empty and the
// error names the domain and selector.
Status parseDkimPrivateKey(DkimEntry& key);

class DkimSigner {
 public:
  // `key.parsed` must hold the key (parseDkimPrivateKey); errors name the
  // domain and selector.
  static Result<std::unique_ptr<DkimSigner>> start(const DkimLibrary& lib, const DkimEntry& key);
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  // One header as libmilter gives it (value without the leading space,
  // folded with LF).
  Status header(std::string_view name, std::string_view value);
  // Fails when there is no From header (RFC 6376 §5.4).
  Status endOfHeaders();
  Status body(const unsigned char* data, size_t len);
  // Signs; returns the DKIM-Signature value folded with LF + TAB.
  Result<std::string> finish();

  const DkimEntry& key() const { return key_; }
  // SHA-256 of the canonicalised signed headers and signature header, after
  // finish() (what the key signs; compared with libopendkim's in tests).
  const Sha256Digest& headerHash() const { return header_hash_; }

 private:
  struct Field {
    std::string name;       // lower case
    std::string canonical;  // relaxed form with CRLF
  };
  DkimSigner(const DkimLibrary& lib, const DkimEntry& key);
  Error failure(const std::string& what) const;

  DkimEntry key_;
  uint64_t time_;
  uint64_t expire_;
  std::vector<Field> fields_;  // the signed ones, in message order
  std::string header_list_;   // h= (names as in the message, then the oversigned)
  Sha256 header_sha_;         // of the canonicalised signed headers, in h= order
  RelaxedBodyHash body_;
  Sha256Digest header_hash_{};
  bool headers_done_ = false;
  bool failed_ = false;
};

// DKIM keys read from Redis, kept until dkim:version changes (one GET per
// message when every domain asked for is cached). Thread-safe.
class DkimKeyCache {
 public:
  // `after_fetch` (a test seam) runs after keys were read from Redis and
  // before they are cached, to interleave a key change deterministically.
  explicit DkimKeyCache(const StoreKeys& keys, std::function<void()> after_fetch = {})
      : keys_(keys), after_fetch_(std::move(after_fetch)) {}
  // The keys of each of `domains` (missing = no keys). `version`, when
  // given, is dkim:version as the caller read it in its own round trip (the
  // milter's account load), so that a cached domain costs no round trip.
  Result<std::map<std::string, std::vector<DkimEntry>>> keysFor(RedisConn& redis,
                                                                const std::vector<std::string>& domains,
                                                                const std::string* version = nullptr);

 private:
  const StoreKeys& keys_;
  std::function<void()> after_fetch_;
  std::mutex mutex_;
  std::string version_;
  std::map<std::string, std::vector<DkimEntry>> cache_;  // domain -> keys (possibly none)
};

// Who signs, and which keys no account owns (admin-global keys, imported
// without --account) it may use: those of `domains`. Keys owned by an
// account are used for that account only.
struct SigningAccount {
  std::string name;
  std::set<std::string> domains;  // its verified sending domains, dkim_domain, ...
};

// Who signs for `account`, from the data the message rules loaded: its
// verified sending domains, its default sender's domain, its dkim_domain and
// the server's dkim_default_domain (keys no account owns sign only for those).
SigningAccount signingAccount(const std::string& account, const MessageAccount& data, const Config& config);

// The domain that signs when the From domain has no usable key: the
// account's dkim_domain, else the server's dkim_default_domain (may be empty).
std::string defaultSigningDomain(const MessageAccount& data, const Config& config);

// The domains whose keys selectSigningKeys() may need: `from_domain` (lower
// case) and its parents, then `default_domain`; empty ones are left out.
std::vector<std::string> signingDomains(const std::string& from_domain, const std::string& default_domain);

// The keys to sign with: the usable keys of `from_domain`, else of its
// nearest parent with usable keys, else of `default_domain`. A key is usable
// when `who` owns it, or when no account owns it and its domain is one of
// who.domains. `loaded` maps domain -> its keys.
std::vector<DkimEntry> selectSigningKeys(const std::string& from_domain,
                                         const std::map<std::string, std::vector<DkimEntry>>& loaded,
                                         const std::string& default_domain, const SigningAccount& who);

}  // namespace mailgate
