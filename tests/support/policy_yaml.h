// Policy YAML text for tests (the OpenShell `network_policies` schema), built from plain values so each
// test states only which binaries may reach which endpoints. Every scalar is double-quoted, so hosts
// like ::1 and paths with odd characters need no care.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace egressd::test {

struct PolicyEndpoint {
  std::string host;  // name, IP literal (IPv6 without brackets) or pattern
  uint16_t port = 0;
  // More keys of this endpoint as YAML lines indented by 8 spaces, each ending in "\n", e.g.
  // "        protocol: rest\n        access: read-only\n". Written verbatim.
  std::string extra = {};
  // Written as `allowed_ips` when `host` is a name (not an IP literal) and `extra` has none: the tests'
  // origins listen on loopback, which egressd dials only where an endpoint allows it. {} leaves it out.
  std::vector<std::string> allowed_ips = {"127.0.0.0/8", "::1"};
};

struct PolicyRule {
  std::string name;  // the key under network_policies
  std::vector<std::string> binaries;
  std::vector<PolicyEndpoint> endpoints;
};

// One rule `rule_name` letting `binary` reach host:port.
std::string policy_allowing(const std::string& binary, const std::string& host, uint16_t port,
                            std::string rule_name = "test");
// Every rule in order (an empty list gives a valid policy that allows nothing).
std::string policy_allowing(const std::vector<PolicyRule>& rules);

}  // namespace egressd::test
