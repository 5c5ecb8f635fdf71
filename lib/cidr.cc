// cidr.cc — CIDR parsing (inet_pton) and matching for IPv4 and IPv6;
// IPv4-mapped IPv6 client addresses (::ffff:a.b.c.d) match IPv4 networks.
#include "mailgate/cidr.h"

#include <arpa/inet.h>
#include <charconv>

namespace mailgate {
namespace {

bool parseAddress(std::string_view text, bool& v6, std::array<uint8_t, 16>& out) {
  std::string s(text);
  out.fill(0);
  if (inet_pton(AF_INET, s.c_str(), out.data()) == 1) {
    v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1) {
    v6 = true;
    return true;
  }
  return false;
}

bool prefixMatch(const uint8_t* a, const uint8_t* b, unsigned bits) {
  unsigned full = bits / 8, rest = bits % 8;
  for (unsigned i = 0; i < full; ++i) {
    if (a[i] != b[i]) return false;
  }
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

std::optional<Cidr> parseCidr(std::string_view text) {
  Cidr c;
  size_t slash = text.find('/');
  if (!parseAddress(text.substr(0, slash), c.v6, c.addr)) return std::nullopt;
  unsigned max = c.v6 ? 128 : 32;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), c.prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || c.prefix > max) return std::nullopt;
  }
  // Clear host bits so that equal networks have equal text.
  for (unsigned bit = c.prefix; bit < max; ++bit) c.addr[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  return c;
}

std::string Cidr::toString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(v6 ? AF_INET6 : AF_INET, addr.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix);
}

bool Cidr::contains(std::string_view address) const {
  bool is_v6 = false;
  std::array<uint8_t, 16> a;
  if (!parseAddress(address, is_v6, a)) return false;
  if (is_v6 && !v6) {
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!prefixMatch(a.data(), kMapped, 96)) return false;
    return prefixMatch(a.data() + 12, addr.data(), prefix);
  }
  if (is_v6 != v6) return false;
  return prefixMatch(a.data(), addr.data(), prefix);
}

}  // namespace mailgate
