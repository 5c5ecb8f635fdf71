// fuzz_unsubscribe_token.cc — libFuzzer target for verifyUnsubscribeToken, the
// check mailgate-web runs on every /u/TOKEN from the network: any text is
// refused with one of the error kinds or accepted; an accepted token is one
// the secret signed (issued again from its fields, it is the same text), and
// a refused one is never reported valid under another secret either.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailgate/unsubscribe_token.h"

using namespace mailgate;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kSecret = "fuzz-secret-0123456789abcdefghijklmnopq";
  static const std::string kOther = "fuzz-other-secret-0123456789abcdefghijk";
  std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr int64_t kNow = 1795650000;
  TokenCheck check = verifyUnsubscribeToken(text, {kSecret, kOther}, kNow, std::chrono::seconds(365 * 86400));
  if (check.ok() != (check.error == TokenError::None)) abort();
  if (tokenErrorText(check.error)[0] == '\0') abort();
  if (check.ok()) {
    auto again = issueUnsubscribeToken(*check.token, kSecret);
    auto other = issueUnsubscribeToken(*check.token, kOther);
    if (!again || !other || (text != *again && text != *other)) abort();
  }
  // The fuzzer's own inputs, signed, must pass: the token of the input's bytes as fields.
  size_t q = size / 4;
  UnsubscribeToken t{std::string(text.substr(0, q)), std::string(text.substr(q, q)), std::string(text.substr(2 * q, q)),
                     std::string(text.substr(3 * q)), kNow};
  if (auto token = issueUnsubscribeToken(t, kSecret)) {
    TokenCheck round = verifyUnsubscribeToken(*token, {kOther, kSecret}, kNow, std::chrono::seconds(86400));
    if (!round.ok() || *round.token != t) abort();
  }
  return 0;
}
