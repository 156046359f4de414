// Every response egressd writes itself (not relayed from an upstream): 200 for CONNECT, the policy 403,
// and error responses. Bodies are JSON; every one says Connection: close unless stated.
#pragma once

#include <cstdint>
#include <string>

#include "procid/peer.h"
#include "proxy/error.h"

namespace egressd::proxy {

struct DenyDetails {
  std::string detail;  // "CONNECT host:443 not permitted by policy"
  std::string reason;  // decide()'s sentence, word for word
  const procid::PeerIdentity* caller = nullptr;
  std::string host;
  uint16_t port = 0;
};

std::string connect_established();
std::string deny_response(const DenyDetails& deny);
std::string error_response(const Error& error);

}  // namespace egressd::proxy
