#include "proxy/socket_address.h"

#include <arpa/inet.h>

#include <cstring>

#include <fmt/format.h>
#include <uv.h>

namespace egressd::proxy {

std::string ip_text(const sockaddr_storage& addr) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, ip, sizeof ip);
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, ip, sizeof ip);
  }
  return ip;
}

uint16_t port_of(const sockaddr_storage& addr) {
  return ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(addr).sin6_port
                                          : reinterpret_cast<const sockaddr_in&>(addr).sin_port);
}

std::string endpoint_text(const sockaddr_storage& addr) {
  return addr.ss_family == AF_INET6 ? fmt::format("[{}]:{}", ip_text(addr), port_of(addr))
                                    : fmt::format("{}:{}", ip_text(addr), port_of(addr));
}

policy::IpAddress policy_ip(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6) {
    uint8_t bytes[16];
    std::memcpy(bytes, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, 16);
    return policy::IpAddress::v6(bytes);
  }
  uint8_t bytes[4];
  std::memcpy(bytes, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, 4);
  return policy::IpAddress::v4(bytes);
}

procid::IpAddress procid_ip(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6) {
    uint8_t bytes[16];
    std::memcpy(bytes, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, 16);
    return procid::IpAddress::v6(bytes);
  }
  uint8_t bytes[4];
  std::memcpy(bytes, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, 4);
  return procid::IpAddress::v4(bytes);
}

bool to_sockaddr(const std::string& ip, uint16_t port, sockaddr_storage& out) {
  out = {};
  if (uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0) return true;
  out = {};
  return uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
}

}  // namespace egressd::proxy
