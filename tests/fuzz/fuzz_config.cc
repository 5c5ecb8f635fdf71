// fuzz_config.cc — libFuzzer target for the mailgate.conf parser: any text
// either parses or throws ConfigError, nothing else.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailgate/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    mailgate::parseConfig(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.conf");
  } catch (const mailgate::ConfigError&) {
  }
  return 0;
}
