#include "tests/support/policy_yaml.h"

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
    }
    yaml += "    binaries:\n";
    for (const std::string& binary : rule.binaries) yaml += "      - path: " + quoted(binary) + "\n";
  }
  return yaml;
}

}  // namespace egressd::test
