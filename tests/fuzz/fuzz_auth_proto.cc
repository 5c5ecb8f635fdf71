// fuzz_auth_proto.cc — libFuzzer target for the Dovecot auth protocol
// session: each input line goes to AuthSession with a fake authenticator.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mailgate/auth_proto.h"

namespace {

class AcceptGood : public mailgate::Authenticator {
 public:
  mailgate::AuthResult authenticate(std::string_view user, std::string_view password, std::string_view) override {
    if (password == "good") return {mailgate::AuthResult::Kind::Ok, std::string(user) + "/k", "", false};
    return {mailgate::AuthResult::Kind::Fail, "", "wrong api key", false};
  }
};

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
  return 0;
}
