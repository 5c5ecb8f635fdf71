// dkim_keys.cc — DKIM key generation, PEM import and TXT records, all with
// OpenSSL EVP behind RAII handles.
#include "mailgate/dkim_keys.h"

#include <memory>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mailgate/crypto.h"

namespace mailgate {
namespace {

struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = EvpPkey;

int noPassphrase(char*, int, int, void*) { return -1; }

Error invalid(std::string m) { return Error{Error::Kind::Invalid, std::move(m)}; }

Result<DkimKey> describe(const Pkey& key) {
  DkimKey out;
  int id = EVP_PKEY_get_base_id(key.get());
  if (id == EVP_PKEY_RSA) {
    out.algo = DkimAlgo::Rsa;
    out.bits = EVP_PKEY_get_bits(key.get());
    if (out.bits < 1024) return invalid("RSA key of " + std::to_string(out.bits) + " bits: DKIM needs at least 1024");
  } else if (id == EVP_PKEY_ED25519) {
    out.algo = DkimAlgo::Ed25519;
    out.bits = 256;
  } else {
    return invalid("not an RSA or Ed25519 key");
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return invalid("cannot encode the key");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  out.pem.assign(data, static_cast<size_t>(len));
  return out;
}

}  // namespace

const char* dkimAlgoName(DkimAlgo algo) { return algo == DkimAlgo::Rsa ? "rsa-sha256" : "ed25519-sha256"; }

Result<DkimKey> generateDkimKey(std::string_view algo) {
  int id = algo == "rsa2048" ? EVP_PKEY_RSA : algo == "ed25519" ? EVP_PKEY_ED25519 : 0;
  if (id == 0) return invalid("unknown algorithm \"" + std::string(algo) + "\": expected rsa2048 or ed25519");
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_id(id, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) return invalid("cannot initialise key generation");
  if (id == EVP_PKEY_RSA && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048) != 1) return invalid("RSA key size");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) return invalid("key generation failed");
  return describe(Pkey(raw));
}

void EvpPkeyFree::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }

EvpPkey readPrivateKeyPem(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return EvpPkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr) : nullptr);
}

Result<DkimKey> readDkimKey(std::string_view pem) {
  Pkey key = readPrivateKeyPem(pem);
  if (!key) return invalid("not a PEM private key");
  return describe(key);
}

Result<std::string> dkimTxtValue(const DkimKey& k) {
  Pkey pkey = readPrivateKeyPem(k.pem);
  if (!pkey) return invalid("not a PEM private key");
  if (k.algo == DkimAlgo::Ed25519) {
    unsigned char raw[32];
    size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pkey.get(), raw, &len) != 1) return invalid("cannot read the public key");
    return "v=DKIM1; k=ed25519; p=" + base64Encode(std::string_view(reinterpret_cast<char*>(raw), len));
  }
  int len = i2d_PUBKEY(pkey.get(), nullptr);
  if (len <= 0) return invalid("cannot encode the public key");
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_PUBKEY(pkey.get(), &p);
  return "v=DKIM1; k=rsa; p=" + base64Encode(der);
}

std::string dkimZoneRecord(std::string_view selector, std::string_view domain, std::string_view value) {
  std::string out = std::string(selector) + "._domainkey." + std::string(domain) + ". IN TXT (";
  for (size_t i = 0; i < value.size(); i += 255) out += " \"" + std::string(value.substr(i, 255)) + "\"";
  return out + " )";
}

}  // namespace mailgate
