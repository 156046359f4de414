// What `egressd check` says about a policy that loads but may not do what its author meant: rules that can
// never match, duplicate endpoints, binaries this host does not have, a policy path that is a symlink.
// lint_rules() is pure; the host checks read the file system (stat, realpath): call them off the loop.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace egressd::policy {

enum class LintLevel {
  Warning,  // the policy does not do what it says somewhere; `check --strict` fails on it
  Note,     // worth knowing, but not a mistake (a portable policy, the ConfigMap layout)
};

struct LintFinding {
  LintLevel level = LintLevel::Warning;
  SourceLocation where;  // line 0 when it concerns the whole file
  std::string message;
};

// Every finding below, in file order (file-wide ones first).
std::vector<LintFinding> lint_policy(const Policy& policy);

// What the model makes impossible or redundant: endpoints used by no connection (shadowed by an earlier
// one in the same rule, an address egressd never dials, an IP outside the endpoint's own allowed_ips),
// the same host:port in two rules, HTTP rules no request can reach (a method the parser refuses or
// CONNECT, a path no normalized request path has, an allow rule every request of which a deny rule
// refuses, HTTPS through `tls: skip`), and binary entries an earlier entry of the rule always wins over.
std::vector<LintFinding> lint_rules(const Policy& policy);

// Binary entries that match nothing on this host: an exact path that does not exist, is not a regular
// file or has no execute bit; a glob whose fixed leading directory does not exist. A missing path is a
// note when another entry of the same rule exists here (a policy shared by hosts), a warning otherwise,
// and always a warning when anyone but root could create it (a directory on its way that is writable by
// others or owned by another user).
std::vector<LintFinding> lint_binaries_on_host(const Policy& policy);

// `path` (as given to egressd) when it is, or goes through, a symlink: where it leads. A Kubernetes
// ConfigMap mount (`policy.yaml -> ..data/policy.yaml`) is a note; any other symlink a warning.
std::optional<LintFinding> lint_policy_path(const std::string& path);

// Whether an HTTP request with `method` (upper case) can ever reach decide_http(): egressd's request
// parser (llhttp, strict) accepts only the methods it knows, and a CONNECT is decided per connection.
bool http_method_reaches_rules(std::string_view method);

// Why no request path that decide_http() evaluates (see normalize_request_path()) can match the path
// `glob` of an L7 rule, or nullopt when some path can.
std::optional<std::string> path_glob_never_matches(std::string_view glob);

// "file:line:col: warning: message" ("file: note: message" without a position).
std::string format_finding(const LintFinding& finding);

}  // namespace egressd::policy
