// Parsing of the textual patterns inside a policy: host patterns, allowed_ips entries, L7 methods and paths.
// Pure functions (no YAML, no I/O); the loader adds file:line:col to the reasons they return.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "policy/policy.h"

namespace egressd::policy {

// Validates and normalizes an endpoint `host`: a name (lowercased), an IPv4 literal, an IPv6 literal
// (brackets optional; stored in inet_ntop form) or a wildcard name. The error is a sentence saying why
// the host is rejected, e.g. "host pattern '*.com' is too broad: ...".
Result<HostPattern, std::string> parse_host_pattern(std::string_view text);

// Parses an `allowed_ips` entry: an IPv4/IPv6 address (a /32 or /128) or a CIDR. Host bits may be set;
// the stored address is the network. The error is a sentence saying why the entry is rejected.
Result<Cidr, std::string> parse_cidr(std::string_view text);

// An L7 rule's `method`, upper-cased: an HTTP method token such as GET, or "*" for any.
Result<std::string, std::string> parse_http_method(std::string_view text);

// An L7 rule's `path` glob: it starts with '/' (or is "*" or "**", any path).
Result<std::string, std::string> parse_http_path(std::string_view text);

}  // namespace egressd::policy
