// dkim_keys.h — DKIM key material with OpenSSL EVP: generating RSA-2048 and
// Ed25519 keys, reading and checking imported PEM keys, and the DNS TXT
// record to publish (RFC 6376 / RFC 8463), split into 255-byte strings.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mailgate/result.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace mailgate {

struct EvpPkeyFree {
  void operator()(evp_pkey_st* key) const;
};
using EvpPkey = std::unique_ptr<evp_pkey_st, EvpPkeyFree>;

// A PEM private key (PKCS#1 or PKCS#8) as OpenSSL parsed it; null when it is
// unreadable. An encrypted key is unreadable (no passphrase is asked for: a
// daemon must not prompt on a terminal).
EvpPkey readPrivateKeyPem(std::string_view pem);

enum class DkimAlgo { Rsa, Ed25519 };

struct DkimKey {
  DkimAlgo algo = DkimAlgo::Rsa;
  int bits = 0;
  std::string pem;  // PKCS#8 private key
};

// "rsa2048" or "ed25519".
Result<DkimKey> generateDkimKey(std::string_view algo);

// Parses a PEM private key (PKCS#1 or PKCS#8); RSA keys must have >= 1024 bits.
// The key is re-encoded as PKCS#8.
Result<DkimKey> readDkimKey(std::string_view pem);

// The TXT record value: "v=DKIM1; k=rsa; p=<base64 DER SubjectPublicKeyInfo>"
// or "v=DKIM1; k=ed25519; p=<base64 of the raw 32-byte key>".
Result<std::string> dkimTxtValue(const DkimKey& key);

// A zone-file line: `SEL._domainkey.DOMAIN. IN TXT ( "..." "..." )`, the value
// split into strings of at most 255 bytes.
std::string dkimZoneRecord(std::string_view selector, std::string_view domain, std::string_view txt_value);

const char* dkimAlgoName(DkimAlgo algo);  // "rsa-sha256", "ed25519-sha256"

}  // namespace mailgate
