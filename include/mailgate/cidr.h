// cidr.h — IPv4/IPv6 networks (CIDR) for IP pinning: parse "192.0.2.0/24",
// "2001:db8::/32" or a bare address, and test whether an address is inside.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailgate {

struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> addr{};  // IPv4 uses the first 4 bytes
  unsigned prefix = 0;

  // Canonical text, e.g. "192.0.2.0/24" (host bits cleared).
  std::string toString() const;
  bool contains(std::string_view address) const;
};

std::optional<Cidr> parseCidr(std::string_view text);

}  // namespace mailgate
