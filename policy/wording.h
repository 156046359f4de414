// How policy tools (check, explain, suggest) write policy parts in messages: positions, quoted names and
// lists, the same way everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace egressd::policy::wording {

// "12:9"
inline std::string position(const SourceLocation& where) {
  return std::to_string(where.line) + ":" + std::to_string(where.col);
}

inline std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// "80, 443"
inline std::string join_ports(const std::vector<uint16_t>& ports) {
  std::string out;
  for (uint16_t port : ports) out += (out.empty() ? "" : ", ") + std::to_string(port);
  return out;
}

// "10.0.0.0/8, fd00::/64"
inline std::string join_cidrs(const std::vector<Cidr>& cidrs) {
  std::string out;
  for (const Cidr& cidr : cidrs) out += (out.empty() ? "" : ", ") + cidr.text;
  return out;
}

}  // namespace egressd::policy::wording
