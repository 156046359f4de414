// IpAddress: v4-mapped normalization and printing.
#include "procid/peer.h"

#include <doctest/doctest.h>

namespace egressd::procid {
namespace {

TEST_CASE("an IPv4-mapped IPv6 address is stored as the plain IPv4 address") {
  const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  const uint8_t plain[4] = {10, 1, 2, 3};
  const IpAddress address = IpAddress::v6(mapped);
  CHECK(address.family == 4);
  CHECK(address == IpAddress::v4(plain));
  CHECK(address.to_string() == "10.1.2.3");
}

TEST_CASE("IpAddress prints IPv4 dotted and IPv6 in its compressed form") {
  struct Row {
    uint8_t bytes[16];
    const char* want;
  };
  const Row v6_rows[] = {
      {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "::1"},
      {{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a}, "2001:db8::2a"},
      {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "::"},
      {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1}, "::127.0.0.1"},  // v4-compatible, not mapped
  };
  for (const Row& row : v6_rows) {
    CAPTURE(row.want);
    const IpAddress address = IpAddress::v6(row.bytes);
    CHECK(address.family == 6);
    CHECK(address.to_string() == row.want);
  }
  const uint8_t localhost[4] = {127, 0, 0, 1};
  CHECK(IpAddress::v4(localhost).to_string() == "127.0.0.1");
  CHECK(IpAddress().to_string() == "(no address)");
}

}  // namespace
}  // namespace egressd::procid
