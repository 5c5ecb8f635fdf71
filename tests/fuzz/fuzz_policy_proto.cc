// fuzz_policy_proto.cc — libFuzzer target for the policy protocol parser:
// arbitrary bytes, fed in two pieces, then EOF; must never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailgate/policy_proto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  mailgate::PolicyParser parser;
  mailgate::PolicyRequest req;
  size_t half = size / 2;
  parser.feed(in.substr(0, half));
  while (parser.next(req) == mailgate::PolicyParser::Status::Request) {
  }
  parser.feed(in.substr(half));
  while (parser.next(req) == mailgate::PolicyParser::Status::Request) {
  }
  while (parser.finish(req) == mailgate::PolicyParser::Status::Request) {
  }
  return 0;
}
