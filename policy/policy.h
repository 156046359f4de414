// The policy model: the immutable, normalized form of an OpenShell-style `network_policies` YAML file.
// Built only by the loader; shared read-only between sessions as std::shared_ptr<const Policy>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace egressd::policy {

// Where something stands in a policy file (1-based line and column).
struct SourceLocation {
  std::string file;
  int line = 0;
  int col = 0;
};

// A host pattern: an exact name or IP literal, or a wildcard such as `*.example.com` (exactly one
// label), `**.example.com` (one or more labels), `*-api.example.com`, `*.s3.*.amazonaws.com`.
// Stored lowercase; IPv6 literals in canonical inet_ntop form without brackets. Empty text: a hostless
// endpoint (one that allows IP addresses by `allowed_ips` alone); it matches no name.
struct HostPattern {
  std::string text;
  bool is_wildcard = false;
  bool is_ip_literal = false;       // an IPv4 or IPv6 address
  std::vector<std::string> labels;  // text split on '.', for wildcard matching
};

// One method/path/query rule of an L7 (`protocol: rest`) endpoint, evaluated by decide_http()
// (policy/http_matcher.h) against each request the proxy sees.
struct HttpRule {
  std::string method;                                                   // upper case, or "*" for any
  std::string path;                                                     // glob with * and **; empty = any
  std::vector<std::pair<std::string, std::vector<std::string>>> query;  // name -> accepted globs
  SourceLocation where;
};

enum class Protocol { None, Rest, Websocket, Graphql, Mcp, JsonRpc, Sql, Tcp };
enum class TlsMode { Auto, Skip };
// `enforcement` of an endpoint's HTTP rules, and `mode` of a whole policy or of one rule (egressd's own
// key): Audit lets through what the policy would deny, and the proxy logs it with would_deny.
enum class Enforcement { Enforce, Audit };
enum class Access { None, ReadOnly, ReadWrite, Full };

struct Cidr {
  std::string text;        // as written in the policy
  uint8_t family = 0;      // 4 or 6
  uint8_t bytes[16] = {};  // network address, network byte order (4 bytes used for v4)
  int prefix_len = 0;
};

struct Endpoint {
  HostPattern host;             // empty text when hostless: then allowed_ips is not empty
  std::vector<uint16_t> ports;  // `ports`, or the single `port`; never empty
  Protocol protocol = Protocol::None;
  TlsMode tls = TlsMode::Auto;
  Enforcement enforcement = Enforcement::Enforce;
  Access access = Access::None;
  std::vector<HttpRule> rules;
  std::vector<HttpRule> deny_rules;
  std::vector<Cidr> allowed_ips;
  // `redirects` (egressd's own key): hosts a 3xx from this endpoint may send the same process to. The
  // proxy lets that process fetch exactly the Location URL for a short window; see redirect_allowed().
  std::vector<HostPattern> redirect_hosts;
  SourceLocation where;

  // No `host`: the endpoint allows request hosts that are IP literals inside its allowed_ips.
  bool hostless() const { return host.text.empty(); }
};

// A binary entry: an exact absolute path or a glob (`*` within one path segment, `**` across).
struct BinaryPattern {
  std::string path;  // as written
  bool is_glob = false;
  std::vector<std::string> resolved;  // for an exact path that is a symlink: its target(s), re-resolved
                                      // at every load (realpath); matching accepts path or any of these
  bool children = false;              // also covers processes this binary spawned (any ancestor)
  // `sha256` (lowercase hex, 64 digits): the connecting executable's contents must hash to this; the
  // proxy hashes /proc/PID/exe before it allows. Empty: no pin. Never combined with `children`.
  std::string sha256;
  SourceLocation where;
};

struct Rule {
  std::string key;   // the map key under network_policies
  std::string name;  // `name:` if given, else the key; used in logs and reasons
  std::vector<Endpoint> endpoints;
  std::vector<BinaryPattern> binaries;
  // In force for this rule: its own `mode`, else the policy's. Audit: what this rule's binaries would be
  // denied (any host:port, and its endpoints' HTTP rules) is let through and logged (see decide()).
  Enforcement mode = Enforcement::Enforce;
  SourceLocation where;
};

struct LoadWarning {
  SourceLocation where;
  std::string message;
};

// Which rules can match a request, so that decide() looks at those instead of every rule; built by
// index_rules() (policy/matcher.h) at load time. Only a filter: decide() still runs the full match on
// each candidate, in file order, so the index can make a decision faster but never different. Rule
// numbers are positions in Policy::rules, ascending in every list.
struct RuleIndex {
  struct TextHash {  // lets a std::string_view look up a std::string key without a copy
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
      return std::hash<std::string_view>{}(text);
    }
  };
  using RulesByText = std::unordered_map<std::string, std::vector<uint32_t>, TextHash, std::equal_to<>>;

  std::size_t rule_count = 0;  // Policy::rules.size() when built; decide() ignores an index that disagrees
  RulesByText exact_host;      // lowercase host or IP literal
  RulesByText one_label;       // `*.S` by S: hosts L.S
  RulesByText any_labels;      // `**.S` by S: hosts A.B...S
  std::vector<uint32_t> any_host;     // rules with another endpoint shape (hostless, `*-api.x`, `a.*.x`)
  std::vector<uint32_t> audit_rules;  // rules whose mode is Audit
};

struct Policy {
  // The top-level `mode`. Audit: every denial decide() or decide_http() would give is let through and
  // logged, except for the rules whose own `mode: enforce` keeps their binaries denied.
  Enforcement mode = Enforcement::Enforce;
  std::vector<Rule> rules;  // in file order
  std::vector<LoadWarning> warnings;
  std::string source_path;  // the path it was loaded from ("<embedded>" or "<string>" otherwise)
  std::string source_hash;  // 16 hex digits identifying the source text and resolved symlink targets
  std::shared_ptr<const RuleIndex> index;  // null: decide() scans every rule
};

}  // namespace egressd::policy
