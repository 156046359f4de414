#include "procid/peer.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace egressd::procid {

IpAddress IpAddress::v4(const uint8_t (&b)[4]) {
  IpAddress address;
  address.family = 4;
  std::memcpy(address.bytes, b, sizeof b);
  return address;
}

IpAddress IpAddress::v6(const uint8_t (&b)[16]) {
  // RFC 4291 2.5.5.2: ::ffff:a.b.c.d is an IPv4 peer seen through an AF_INET6 socket.
  static constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b, kV4MappedPrefix, sizeof kV4MappedPrefix) == 0) {
    const uint8_t v4_bytes[4] = {b[12], b[13], b[14], b[15]};
    return v4(v4_bytes);
  }
  IpAddress address;
  address.family = 6;
  std::memcpy(address.bytes, b, sizeof b);
  return address;
}

std::string IpAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  const int af = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC;
  if (af == AF_UNSPEC || inet_ntop(af, bytes, text, sizeof text) == nullptr) return "(no address)";
  return text;
}

}  // namespace egressd::procid
