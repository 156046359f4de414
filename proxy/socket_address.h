// sockaddr_storage as the proxy meets it (accepted peers, resolved and dialled addresses): text for logs,
// the policy's and procid's address types, and IP literals parsed into it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "policy/destination.h"
#include "procid/peer.h"

namespace egressd::proxy {

std::string endpoint_text(const sockaddr_storage& addr);  // "1.2.3.4:80", "[::1]:80"
std::string ip_text(const sockaddr_storage& addr);        // "1.2.3.4", "::1"
uint16_t port_of(const sockaddr_storage& addr);
policy::IpAddress policy_ip(const sockaddr_storage& addr);
// procid's form: a v4-mapped IPv6 address becomes plain IPv4, as the kernel reports sockets.
procid::IpAddress procid_ip(const sockaddr_storage& addr);
// An IPv4 or IPv6 literal (no brackets) and a port; false if `ip` is not one.
bool to_sockaddr(const std::string& ip, uint16_t port, sockaddr_storage& out);

}  // namespace egressd::proxy
