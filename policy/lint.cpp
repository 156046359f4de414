#include "policy/lint.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "policy/destination.h"
#include "policy/matcher.h"
#include "policy/wording.h"

namespace egressd::policy {
namespace {

// llhttp's HTTP_METHOD_MAP (node-llhttp 8.1, Debian 12) without CONNECT: the methods a request can have
// when egressd's strict parser hands it on. tests/unit/proxy/lint_methods_test.cpp holds this list
// against llhttp itself.
constexpr std::array<std::string_view, 33> kMethodsReachingRules = {
    "DELETE", "GET",    "HEAD",       "POST",      "PUT",    "OPTIONS",  "TRACE",  "COPY",      "LOCK",
    "MKCOL",  "MOVE",   "PROPFIND",   "PROPPATCH", "SEARCH", "UNLOCK",   "BIND",   "REBIND",    "UNBIND",
    "ACL",    "REPORT", "MKACTIVITY", "CHECKOUT",  "MERGE",  "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
    "PATCH",  "PURGE",  "MKCALENDAR", "LINK",      "UNLINK", "SOURCE"};

using wording::in_quotes;
using wording::join_cidrs;
using wording::join_ports;
using wording::position;

// "api.github.com", "allowed_ips [10.0.0.0/8, fd00::/64]".
std::string endpoint_host(const Endpoint& endpoint) {
  if (!endpoint.hostless()) return endpoint.host.text;
  return "allowed_ips [" + join_cidrs(endpoint.allowed_ips) + "]";
}

// "api.github.com:443", "api.github.com:{80, 443}".
std::string endpoint_text(const Endpoint& endpoint, const std::vector<uint16_t>& ports) {
  const std::string host = endpoint.hostless() ? endpoint_host(endpoint) + " port"
                           : endpoint.host.text.find(':') != std::string::npos
                               ? "[" + endpoint.host.text + "]"
                               : endpoint.host.text;
  const char* separator = endpoint.hostless() ? " " : ":";
  if (ports.size() == 1) return host + separator + std::to_string(ports.front());
  return host + separator + "{" + join_ports(ports) + "}";
}

std::vector<uint16_t> common_ports(const Endpoint& a, const Endpoint& b) {
  std::vector<uint16_t> out;
  for (uint16_t port : b.ports) {
    if (std::find(a.ports.begin(), a.ports.end(), port) != a.ports.end() &&
        std::find(out.begin(), out.end(), port) == out.end()) {
      out.push_back(port);
    }
  }
  return out;
}

bool is_broad(const Endpoint& endpoint) {
  return endpoint.hostless() || endpoint.host.is_wildcard;
}

// Whether host label pattern `a` matches every label `b` does. Only what can be shown for sure: equal
// text, `*` over any single-label pattern, or `a` a glob and `b` a plain label it matches.
bool label_covers(std::string_view a, std::string_view b) {
  if (a == b) return true;
  if (b.find('*') == std::string_view::npos) return a != "**" && value_glob_matches(a, b);
  return a == "*" && b != "**";
}

// Whether wildcard pattern `a` matches every name wildcard pattern `b` matches (false when unsure).
bool wildcard_covers(const HostPattern& a, const HostPattern& b) {
  const std::vector<std::string>& al = a.labels;
  const std::vector<std::string>& bl = b.labels;
  if (al.empty() || bl.empty()) return false;
  const bool a_any = al.front() == "**";
  const bool b_any = bl.front() == "**";
  if (!a_any) {
    if (b_any || al.size() != bl.size()) return false;
    for (std::size_t i = 0; i < al.size(); ++i) {
      if (!label_covers(al[i], bl[i])) return false;
    }
    return true;
  }
  // `**.s1...sk` matches names of at least k+1 labels whose last k match s1...sk.
  const std::size_t k = al.size() - 1;
  const std::size_t b_fixed = b_any ? bl.size() - 1 : bl.size();
  if (b_fixed < k || (!b_any && b_fixed < k + 1)) return false;
  for (std::size_t i = 0; i < k; ++i) {
    if (!label_covers(al[al.size() - 1 - i], bl[bl.size() - 1 - i])) return false;
  }
  return true;
}

bool cidr_within(const Cidr& inner, const Cidr& outer) {
  if (inner.family != outer.family || inner.prefix_len < outer.prefix_len) return false;
  IpAddress network;
  network.family = inner.family;
  std::copy(std::begin(inner.bytes), std::end(inner.bytes), network.bytes.begin());
  return cidr_contains(outer, network);
}

// Whether the broad endpoint `a` matches every host the broad endpoint `b` matches.
bool broad_covers(const Endpoint& a, const Endpoint& b) {
  if (a.hostless() != b.hostless()) return false;  // names and IP literals never meet
  if (!a.hostless()) return wildcard_covers(a.host, b.host);
  return std::all_of(b.allowed_ips.begin(), b.allowed_ips.end(), [&a](const Cidr& inner) {
    return std::any_of(a.allowed_ips.begin(), a.allowed_ips.end(),
                       [&inner](const Cidr& outer) { return cidr_within(inner, outer); });
  });
}

// Every executable path an exact entry matches: its path and the targets it resolved to.
std::vector<std::string> exact_names(const BinaryPattern& binary) {
  std::vector<std::string> names{binary.path};
  names.insert(names.end(), binary.resolved.begin(), binary.resolved.end());
  return names;
}

bool entry_matches_exe(const BinaryPattern& binary, const std::string& exe) {
  return binary_matches(binary, Caller{exe, {}});
}

// The literal start of a glob, up to its first '*'.
std::string_view glob_prefix(std::string_view glob) {
  return glob.substr(0, glob.find('*'));
}

struct BinaryOverlap {
  bool certain = false;  // some executable matches both; `what` names it
  bool possible = false;
  std::string what;
};

// Whether one executable could match both entries (directly, not through `children`).
BinaryOverlap binary_overlap(const BinaryPattern& a, const BinaryPattern& b) {
  if (!a.is_glob || !b.is_glob) {
    const BinaryPattern& exact = !a.is_glob ? a : b;
    const BinaryPattern& other = !a.is_glob ? b : a;
    for (const std::string& name : exact_names(exact)) {
      if (entry_matches_exe(other, name)) return {true, true, name};
    }
    return {};
  }
  if (a.path == b.path) return {true, true, a.path};
  const std::string_view pa = glob_prefix(a.path);
  const std::string_view pb = glob_prefix(b.path);
  if (!pa.starts_with(pb) && !pb.starts_with(pa)) return {};
  return {false, true, a.path + " and " + b.path};
}

// Whether `first` matches every caller `later` matches, so that `later` never decides.
bool binary_covers(const BinaryPattern& first, const BinaryPattern& later) {
  if (later.children && !first.children) return false;
  if (later.is_glob) return first.is_glob && (first.path == later.path || first.path == "/**");
  const std::vector<std::string> names = exact_names(later);
  return std::all_of(names.begin(), names.end(),
                     [&first](const std::string& name) { return entry_matches_exe(first, name); });
}

bool any_path(const std::string& glob) {
  return glob.empty() || glob == "*" || glob == "**";
}

bool same_http_rule(const HttpRule& a, const HttpRule& b) {
  return a.method == b.method && (a.path == b.path || (any_path(a.path) && any_path(b.path))) &&
         a.query == b.query;
}

// Whether deny rule `deny` refuses every request allow rule `allow` matches.
bool deny_covers(const HttpRule& deny, const HttpRule& allow) {
  if (!deny.query.empty()) return false;
  const bool method = deny.method == "*" || deny.method == allow.method;
  return method && (any_path(deny.path) || deny.path == allow.path);
}

std::string describe_http_rule(const HttpRule& rule) {
  return rule.method + " " + (any_path(rule.path) ? std::string("(any path)") : rule.path);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_unreserved(unsigned char c) {  // RFC 3986 §2.3
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

class RuleLinter {
 public:
  explicit RuleLinter(const Policy& policy) : policy_(policy) {}

  std::vector<LintFinding> run() {
    for (const Rule& rule : policy_.rules) {
      lint_endpoints_in_rule(rule);
      lint_binaries_in_rule(rule);
      for (const Endpoint& endpoint : rule.endpoints) lint_http_rules(endpoint);
    }
    lint_across_rules();
    return std::move(findings_);
  }

 private:
  void warn(const SourceLocation& where, std::string message) {
    findings_.push_back({LintLevel::Warning, where, std::move(message)});
  }
  void note(const SourceLocation& where, std::string message) {
    findings_.push_back({LintLevel::Note, where, std::move(message)});
  }

  void lint_endpoints_in_rule(const Rule& rule) {
    for (std::size_t j = 0; j < rule.endpoints.size(); ++j) {
      const Endpoint& endpoint = rule.endpoints[j];
      lint_destination(endpoint);
      lint_repeated_ports(endpoint);
      std::vector<uint16_t> shadowed;  // ports on which an earlier endpoint is always chosen instead
      for (std::size_t i = 0; i < j; ++i) {
        const Endpoint& earlier = rule.endpoints[i];
        const std::vector<uint16_t> ports = common_ports(earlier, endpoint);
        if (ports.empty()) continue;
        std::vector<uint16_t> fresh;
        for (uint16_t port : ports) {
          if (std::find(shadowed.begin(), shadowed.end(), port) == shadowed.end()) fresh.push_back(port);
        }
        if (fresh.empty()) continue;
        // The matcher takes the first endpoint naming the host exactly, else the first broad one.
        if (!is_broad(endpoint) && !is_broad(earlier) && earlier.host.text == endpoint.host.text) {
          warn(endpoint.where, "duplicate endpoint " + endpoint_text(endpoint, fresh) + " in rule " +
                                   in_quotes(rule.name) + " (first at " + position(earlier.where) +
                                   "): egressd always uses the first, so this one's settings never apply");
        } else if (is_broad(endpoint) && is_broad(earlier) && broad_covers(earlier, endpoint)) {
          warn(endpoint.where, "endpoint " + endpoint_text(endpoint, fresh) +
                                   " can never match: the endpoint " + endpoint_text(earlier, fresh) +
                                   " at " + position(earlier.where) +
                                   " comes first in this rule and matches every host this one does");
        } else {
          continue;
        }
        shadowed.insert(shadowed.end(), fresh.begin(), fresh.end());
      }
    }
  }

  void lint_repeated_ports(const Endpoint& endpoint) {
    for (std::size_t i = 0; i < endpoint.ports.size(); ++i) {
      const auto first = std::find(endpoint.ports.begin(), endpoint.ports.end(), endpoint.ports[i]);
      if (first != endpoint.ports.begin() + static_cast<std::ptrdiff_t>(i)) {
        warn(endpoint.where,
             "port " + std::to_string(endpoint.ports[i]) + " is listed twice for " + endpoint_host(endpoint));
      }
    }
  }

  // An IP-literal host is its own only address, so destination safety decides it here and now.
  void lint_destination(const Endpoint& endpoint) {
    if (!endpoint.host.is_ip_literal) return;
    const std::optional<IpAddress> address = IpAddress::parse(endpoint.host.text);
    if (!address) return;
    const AddressClassification found = classify_address(*address);
    if (found.cls == AddressClass::LinkLocal || found.cls == AddressClass::Metadata ||
        found.cls == AddressClass::NotUnicast) {
      warn(endpoint.where, "endpoint " + endpoint_text(endpoint, endpoint.ports) +
                               " can never be reached: " + endpoint.host.text + " is " + found.what +
                               ", which egressd never connects to, whatever the policy says");
      return;
    }
    if (!endpoint.allowed_ips.empty() &&
        std::none_of(endpoint.allowed_ips.begin(), endpoint.allowed_ips.end(),
                     [&address](const Cidr& cidr) { return cidr_contains(cidr, *address); })) {
      warn(endpoint.where, "endpoint " + endpoint_text(endpoint, endpoint.ports) +
                               " can never be reached: " + endpoint.host.text +
                               " is outside its own allowed_ips (" + join_cidrs(endpoint.allowed_ips) +
                               "), and every address it connects to must lie inside them");
    }
  }

  void lint_binaries_in_rule(const Rule& rule) {
    for (std::size_t j = 0; j < rule.binaries.size(); ++j) {
      const BinaryPattern& binary = rule.binaries[j];
      for (std::size_t i = 0; i < j; ++i) {
        const BinaryPattern& earlier = rule.binaries[i];
        if (!binary_covers(earlier, binary)) continue;
        std::string message = "binary entry " + in_quotes(binary.path) + " never decides: the entry " +
                              in_quotes(earlier.path) + " at " + position(earlier.where) +
                              " comes first in rule " + in_quotes(rule.name) +
                              " and matches every executable this one does";
        if (!binary.sha256.empty() && binary.sha256 != earlier.sha256) {
          message += earlier.sha256.empty() ? ", so this entry's sha256 pin is never checked"
                                            : ", so its sha256 pin, not this one's, is checked";
        }
        warn(binary.where, std::move(message));
        break;
      }
    }
  }

  void lint_http_rules(const Endpoint& endpoint) {
    if (endpoint.protocol != Protocol::Rest) return;  // the loader warns that other protocols go unchecked
    if (endpoint.tls == TlsMode::Skip) {
      warn(endpoint.where,
           "'protocol: rest' with 'tls: skip': egressd refuses HTTPS through this endpoint, because TLS it "
           "does not open hides the requests its HTTP rules must check; only plain-HTTP requests can match "
           "them");
    }
    const HttpRule* deny_all = nullptr;
    for (std::size_t i = 0; i < endpoint.deny_rules.size(); ++i) {
      const HttpRule& rule = endpoint.deny_rules[i];
      if (deny_all == nullptr && rule.method == "*" && any_path(rule.path) && rule.query.empty()) {
        deny_all = &rule;
        warn(rule.where, "deny rule " + describe_http_rule(rule) + " refuses every request to " +
                             endpoint_text(endpoint, endpoint.ports) +
                             ": no HTTP request on this endpoint can be allowed");
      }
      lint_reachable(rule, "deny rule", "so it refuses nothing");
      lint_duplicate(endpoint.deny_rules, i, "deny rule");
    }
    for (std::size_t i = 0; i < endpoint.rules.size(); ++i) {
      const HttpRule& rule = endpoint.rules[i];
      if (!lint_reachable(rule, "allow rule", "so it allows nothing")) continue;
      if (lint_duplicate(endpoint.rules, i, "allow rule")) continue;
      if (deny_all != nullptr) continue;  // said once for the endpoint
      for (std::size_t d = 0; d < endpoint.deny_rules.size(); ++d) {
        if (!deny_covers(endpoint.deny_rules[d], rule)) continue;
        warn(rule.where, "allow rule " + describe_http_rule(rule) + " can never allow: deny_rules[" +
                             std::to_string(d) + "] " + describe_http_rule(endpoint.deny_rules[d]) + " at " +
                             position(endpoint.deny_rules[d].where) +
                             " refuses every request it matches, and deny rules win");
        break;
      }
    }
  }

  // False (after warning) when no request can reach `rule`.
  bool lint_reachable(const HttpRule& rule, std::string_view what, std::string_view consequence) {
    const std::string head = std::string(what) + " " + describe_http_rule(rule) + " can never match: ";
    if (rule.method == "CONNECT") {
      warn(rule.where, head +
                           "a CONNECT is decided per connection by host and port; HTTP rules never see "
                           "one, " +
                           std::string(consequence));
      return false;
    }
    if (rule.method != "*" && !http_method_reaches_rules(rule.method)) {
      warn(rule.where, head + "egressd's HTTP parser refuses the method " + in_quotes(rule.method) +
                           " with 400 before any rule is consulted, " + std::string(consequence));
      return false;
    }
    if (std::optional<std::string> why = path_glob_never_matches(rule.path)) {
      warn(rule.where, head + *why + ", " + std::string(consequence));
      return false;
    }
    return true;
  }

  // True (after warning) when an earlier rule in `rules` is the same as rules[i].
  bool lint_duplicate(const std::vector<HttpRule>& rules, std::size_t i, std::string_view what) {
    for (std::size_t e = 0; e < i; ++e) {
      if (!same_http_rule(rules[e], rules[i])) continue;
      warn(rules[i].where, "duplicate " + std::string(what) + " " + describe_http_rule(rules[i]) +
                               " (first at " + position(rules[e].where) + ")");
      return true;
    }
    return false;
  }

  // The same host (as written) and port in two rules: name both, and say whether one executable is
  // listed by both, for which only the earlier rule ever decides.
  void lint_across_rules() {
    for (std::size_t r = 0; r < policy_.rules.size(); ++r) {
      const Rule& rule = policy_.rules[r];
      for (const Endpoint& endpoint : rule.endpoints) {
        if (endpoint.hostless()) continue;
        for (std::size_t q = 0; q < r; ++q) {
          const Rule& earlier_rule = policy_.rules[q];
          const Endpoint* earlier = nullptr;
          std::vector<uint16_t> ports;
          for (const Endpoint& candidate : earlier_rule.endpoints) {
            if (candidate.hostless() || candidate.host.text != endpoint.host.text) continue;
            ports = common_ports(candidate, endpoint);
            if (!ports.empty()) {
              earlier = &candidate;
              break;
            }
          }
          if (earlier == nullptr) continue;
          report_cross_rule_duplicate(earlier_rule, *earlier, rule, endpoint, ports);
          break;  // the first earlier rule is enough to name
        }
      }
    }
  }

  void report_cross_rule_duplicate(const Rule& earlier_rule, const Endpoint& earlier, const Rule& rule,
                                   const Endpoint& endpoint, const std::vector<uint16_t>& ports) {
    std::string message = "endpoint " + endpoint_text(endpoint, ports) + " of rule " + in_quotes(rule.name) +
                          " is also listed by rule " + in_quotes(earlier_rule.name) + " at " +
                          position(earlier.where);
    BinaryOverlap overlap;
    for (const BinaryPattern& a : earlier_rule.binaries) {
      for (const BinaryPattern& b : rule.binaries) {
        BinaryOverlap found = binary_overlap(a, b);
        if (found.certain || (found.possible && !overlap.possible)) overlap = std::move(found);
        if (overlap.certain) break;
      }
      if (overlap.certain) break;
    }
    if (overlap.certain) {
      warn(endpoint.where, message + "; both rules list " + overlap.what + ", and for it " +
                               in_quotes(earlier_rule.name) +
                               " always decides (it comes first), so this endpoint's settings never apply");
    } else if (overlap.possible) {
      warn(endpoint.where, message + "; the binary patterns " + overlap.what +
                               " may match the same executable, and for it " + in_quotes(earlier_rule.name) +
                               " would decide (it comes first)");
    } else {
      note(endpoint.where,
           message + "; the two rules list different binaries, so each rule decides for its own");
    }
  }

  const Policy& policy_;
  std::vector<LintFinding> findings_;
};

}  // namespace

bool http_method_reaches_rules(std::string_view method) {
  return std::find(kMethodsReachingRules.begin(), kMethodsReachingRules.end(), method) !=
         kMethodsReachingRules.end();
}

std::optional<std::string> path_glob_never_matches(std::string_view glob) {
  if (any_path(std::string(glob))) return std::nullopt;
  if (glob.front() != '/') return "the path does not start with '/'";
  for (std::size_t i = 0; i < glob.size(); ++i) {
    const auto c = static_cast<unsigned char>(glob[i]);
    if (c < 0x20 || c == 0x7f)
      return std::string("the path contains a control character, which egressd refuses");
    if (c >= 0x80)
      return std::string("the path has raw non-ASCII bytes; request paths carry them percent-encoded");
    if (c == ' ') return std::string("the path contains a space, which egressd refuses in a request path");
    if (c == '#') return std::string("the path contains '#'; a fragment is never part of a request path");
    if (c == '?') return std::string("the path contains '?'; the query is matched by 'query', not 'path'");
    if (c == '\\')
      return std::string("the path contains a backslash, which egressd refuses in a request path");
    if (c != '%') continue;
    if (i + 2 >= glob.size() || glob[i + 1] == '*' || glob[i + 2] == '*') {
      if (i + 2 >= glob.size() && glob.find('*', i) == std::string_view::npos) {
        return std::string("the path ends in an incomplete percent-escape, which egressd refuses");
      }
      continue;  // a wildcard may complete it
    }
    const int high = hex_value(glob[i + 1]);
    const int low = hex_value(glob[i + 2]);
    const std::string escape(glob.substr(i, 3));
    if (high < 0 || low < 0)
      return "the path has the invalid escape " + in_quotes(escape) + ", which egressd refuses";
    const auto decoded = static_cast<unsigned char>(high * 16 + low);
    if (decoded == '/' || decoded == '\\' || decoded < 0x20 || decoded == 0x7f) {
      return "the path has the escape " + in_quotes(escape) + ", which egressd refuses in a request path";
    }
    if (is_unreserved(decoded)) {
      return "the path has the escape " + in_quotes(escape) + ", which egressd decodes to " +
             in_quotes(std::string(1, static_cast<char>(decoded))) + " before matching; write that instead";
    }
    if (std::islower(static_cast<unsigned char>(glob[i + 1])) != 0 ||
        std::islower(static_cast<unsigned char>(glob[i + 2])) != 0) {
      std::string upper = escape;
      for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      return "the path has the escape " + in_quotes(escape) +
             ", but egressd compares escapes in upper case (" + upper + ")";
    }
  }
  // Segments with no wildcard in them: "//", "." and ".." are refused in requests, never normalized.
  std::size_t start = 1;
  while (start <= glob.size()) {
    const std::size_t slash = std::min(glob.find('/', start), glob.size());
    const std::string_view segment = glob.substr(start, slash - start);
    const bool last = slash == glob.size();
    if (segment.find('*') == std::string_view::npos) {
      if (segment.empty() && !last) {
        return std::string("the path contains an empty segment ('//'), which egressd refuses");
      }
      const std::string_view name = segment.substr(0, segment.find(';'));
      if (name == "." || name == "..") {
        return std::string("the path contains a dot-segment ('.' or '..'), which egressd refuses");
      }
      if (name.empty() && !segment.empty()) {
        return std::string("the path has a segment that is only parameters (';...'), which egressd refuses");
      }
    }
    start = slash + 1;
  }
  return std::nullopt;
}

std::vector<LintFinding> lint_rules(const Policy& policy) {
  return RuleLinter(policy).run();
}

std::vector<LintFinding> lint_policy(const Policy& policy) {
  std::vector<LintFinding> findings;
  if (std::optional<LintFinding> path = lint_policy_path(policy.source_path)) findings.push_back(*path);
  std::vector<LintFinding> rules = lint_rules(policy);
  std::vector<LintFinding> host = lint_binaries_on_host(policy);
  findings.insert(findings.end(), rules.begin(), rules.end());
  findings.insert(findings.end(), host.begin(), host.end());
  std::stable_sort(findings.begin(), findings.end(), [](const LintFinding& a, const LintFinding& b) {
    return std::pair(a.where.line, a.where.col) < std::pair(b.where.line, b.where.col);
  });
  return findings;
}

std::string format_finding(const LintFinding& finding) {
  const char* level = finding.level == LintLevel::Warning ? "warning" : "note";
  if (finding.where.line == 0) return finding.where.file + ": " + level + ": " + finding.message;
  return finding.where.file + ":" + std::to_string(finding.where.line) + ":" +
         std::to_string(finding.where.col) + ": " + level + ": " + finding.message;
}

}  // namespace egressd::policy
