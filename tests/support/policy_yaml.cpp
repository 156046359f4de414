#include "tests/support/policy_yaml.h"

#include <arpa/inet.h>

namespace egressd::test {
namespace {

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool is_ip_literal(const std::string& host) {
  unsigned char bytes[16];
  return inet_pton(AF_INET, host.c_str(), bytes) == 1 || inet_pton(AF_INET6, host.c_str(), bytes) == 1;
}

}  // namespace

std::string policy_allowing(const std::string& binary, const std::string& host, uint16_t port,
                            std::string rule_name) {
  return policy_allowing({PolicyRule{std::move(rule_name), {binary}, {{host, port}}}});
}

std::string policy_allowing(const std::vector<PolicyRule>& rules) {
  std::string yaml = "version: 1\nnetwork_policies:";
  if (rules.empty()) return yaml + " {}\n";
  yaml += "\n";
  for (const PolicyRule& rule : rules) {
    yaml += "  " + quoted(rule.name) + ":\n    endpoints:\n";
    for (const PolicyEndpoint& endpoint : rule.endpoints) {
      yaml += "      - host: " + quoted(endpoint.host) + "\n        port: " + std::to_string(endpoint.port) +
              "\n" + endpoint.extra;
      if (!endpoint.allowed_ips.empty() && !is_ip_literal(endpoint.host) &&
          endpoint.extra.find("allowed_ips") == std::string::npos) {
        yaml += "        allowed_ips: [";
        for (size_t i = 0; i < endpoint.allowed_ips.size(); ++i) {
          yaml += (i == 0 ? "" : ", ") + quoted(endpoint.allowed_ips[i]);
        }
        yaml += "]\n";
      }
    }
    yaml += "    binaries:\n";
    for (const std::string& binary : rule.binaries) yaml += "      - path: " + quoted(binary) + "\n";
  }
  return yaml;
}

}  // namespace egressd::test
