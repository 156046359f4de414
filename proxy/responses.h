// Every response egressd writes itself (not relayed from an upstream): 200 for CONNECT, the policy 403,
// and error responses. Bodies are JSON; every one says Connection: close unless stated.
#pragma once

#include <cstdint>
#include <string>

#include "procid/peer.h"
#include "proxy/error.h"

namespace egressd::proxy {

struct DenyDetails {
  std::string error = "policy_denied";  // or "ssrf_denied": allowed by name, refused by address
  std::string detail;                   // "CONNECT host:443 not permitted by policy"
  std::string reason;                   // decide()'s sentence, word for word
  const procid::PeerIdentity* caller = nullptr;
  std::string host;
  uint16_t port = 0;
  std::string redirect_chain_json;  // JSON array of the redirect hops that led here, or empty
};

// A request refused by a protocol: rest endpoint's HTTP rules. Keep-alive unless
// `close_after`: the client may send its next request on the same connection.
struct HttpDenyDetails {
  std::string policy;     // the network_policies entry whose rules refused
  std::string http_rule;  // which access preset or rule decided
  std::string reason;
  std::string method;
  std::string path;
  const procid::PeerIdentity* caller = nullptr;
  std::string host;
  uint16_t port = 0;
  std::string redirect_chain_json;  // JSON array of the hops that led here, or empty
};

std::string connect_established();
std::string http_deny_response(const HttpDenyDetails& deny, bool close_after);
std::string deny_response(const DenyDetails& deny);
std::string error_response(const Error& error);

}  // namespace egressd::proxy
