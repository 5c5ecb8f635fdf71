// fuzz_auth_proto.cc — libFuzzer target for the Dovecot auth protocol
// session: each input line goes to AuthSession with a fake authenticator;
// then the whole input is a SASL payload, sent base64-encoded as AUTH PLAIN
// (initial response) and as LOGIN's two CONT rounds, whose answers must be
// what decodePlain() and the key say; base64 and field escapes round-trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>

#include "mailgate/auth_proto.h"
#include "mailgate/crypto.h"

namespace {

class AcceptGood : public mailgate::Authenticator {
 public:
  mailgate::AuthResult authenticate(std::string_view user, std::string_view password, std::string_view) override {
    if (password == "good") return {mailgate::AuthResult::Kind::Ok, std::string(user) + "/k", "", false};
    return {mailgate::AuthResult::Kind::Fail, "", "wrong api key", false};
  }
};

// The answer a fresh session gives to `lines` (after the handshake).
std::string answer(std::initializer_list<std::string> lines) {
  AcceptGood auth;
  mailgate::AuthSession session(auth, 1, 1, "00");
  std::string out;
  session.onLine("VERSION\t1\t2", out);
  for (const auto& l : lines) {
    if (session.onLine(l, out) == mailgate::AuthSession::Next::Close) abort();  // well-formed lines
  }
  return out;
}

// The whole input as the decoded SASL payload.
void saslPayload(std::string_view payload) {
  std::string b64 = mailgate::base64Encode(payload);
  auto decoded = mailgate::base64Decode(b64);
  if (!decoded || *decoded != payload) abort();
  if (mailgate::unescapeAuthField(mailgate::escapeAuthField(payload)) != payload) abort();
  bool fits = payload.size() <= 1024;
  std::string resp = payload.empty() ? "=" : b64;

  // PLAIN: authzid NUL authcid NUL password.
  auto creds = mailgate::decodePlain(payload);
  if (creds && creds->authzid + '\0' + creds->authcid + '\0' + creds->password != payload) abort();
  bool plain_ok = fits && creds && (creds->authzid.empty() || creds->authzid == creds->authcid) &&
                  creds->password == "good";
  std::string plain = answer({"AUTH\t7\tPLAIN\tservice=smtp\tresp=" + resp});
  if ((plain == "OK\t7\tuser=" + mailgate::escapeAuthField(creds ? creds->authcid + "/k" : "") + "\n") != plain_ok) {
    abort();
  }
  if (!plain_ok && plain.rfind("FAIL\t7\treason=", 0) != 0) abort();

  // LOGIN: the payload is the user name, then the password.
  std::string login = answer({"AUTH\t8\tLOGIN\tservice=smtp", "CONT\t8\t" + resp, "CONT\t8\t" + resp});
  std::string expect = "CONT\t8\tVXNlcm5hbWU6\n";
  if (!fits) expect += "FAIL\t8\treason=invalid base64 data\n";
  else if (payload == "good") expect += "CONT\t8\tUGFzc3dvcmQ6\nOK\t8\tuser=good/k\n";
  else expect += "CONT\t8\tUGFzc3dvcmQ6\nFAIL\t8\treason=wrong api key\n";
  if (!fits && login.find("FAIL\t8") == std::string::npos) abort();
  if (fits && login != expect) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  AcceptGood auth;
  mailgate::AuthSession session(auth, 1, 1, "00");
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string out;
  size_t start = 0;
  while (start <= in.size()) {
    size_t nl = in.find('\n', start);
    std::string_view line = in.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (session.onLine(line, out) == mailgate::AuthSession::Next::Close) break;
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  saslPayload(in);
  return 0;
}
