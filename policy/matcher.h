// decide(): the pure policy function. No I/O, clock or logging; the same inputs give the same Decision.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace egressd::policy {

// Who is calling: the executable of the process holding the client socket, and its ancestors'
// executables (nearest parent first; only ancestors shared by every holder of the socket).
struct Caller {
  std::string exe;
  std::vector<std::string> ancestors;
};

// What the caller wants to reach. `host` is lowercase, an IPv6 literal without brackets.
struct EgressRequest {
  const Caller& caller;
  std::string_view host;
  uint16_t port = 0;
};

enum class Verdict { Allow, Deny };

struct Decision {
  Verdict verdict = Verdict::Deny;
  const Rule* rule = nullptr;          // the allowing rule (valid while the Policy lives); null on deny
  const Endpoint* endpoint = nullptr;  // the allowing endpoint; null on deny
  const BinaryPattern* binary =
      nullptr;         // the allowing binary entry; its `sha256`, if any, is still to check
  std::string reason;  // a sentence for the 403 body and the deny log, word for word
  std::vector<std::string> rules_considered;  // names of rules whose endpoint matched host:port

  // A would-be denial that audit mode lets through: `verdict` stays Deny (so code that does not look
  // here still denies; rule, endpoint and binary stay null), `reason` says what enforce would have said.
  bool audited = false;
  // The rule in audit mode that lists the caller (the first in file order), to which the would-be denial
  // is attributed; null when only the policy's `mode: audit` applies (no rule lists the caller).
  const Rule* audit_rule = nullptr;
  // audit_rule's binary entry matching the caller; its `sha256`, if any, is still to check.
  const BinaryPattern* audit_binary = nullptr;
};

// An endpoint matches when its host pattern matches request.host (a hostless endpoint: when request.host
// is an IP literal inside its allowed_ips) and it lists request.port.
// Audit: a denial is `audited` when a rule whose mode is Audit lists the caller's binary, or, when no
// rule lists it, when the policy's mode is Audit. A rule in Enforce mode that lists the caller keeps it
// denied under a policy in audit mode. A caller whose executable is unknown is never audited.
Decision decide(const Policy& policy, const EgressRequest& request);

// Builds policy.index from policy.rules (the loader calls it last). decide() gives the same Decision with
// or without it; with it, the cost of a decision depends on the rules that can match, not on their number.
void index_rules(Policy& policy);

// decide() over every rule in file order, ignoring policy.index: the reference the index is tested against.
Decision decide_without_index(const Policy& policy, const EgressRequest& request);

// The policy's modes in a few words, for the console: "enforce", "audit", "enforce (audit: rules 'a',
// 'b')", "audit (enforce: rule 'c')". Equal texts mean equal modes (a reload compares them).
std::string describe_modes(const Policy& policy);

// Whether a 3xx from `endpoint` may send its caller to `host` (lowercase or not; an IPv6 literal without
// brackets): true when one of the endpoint's `redirects` patterns matches it, as `host` would.
bool redirect_allowed(const Endpoint& endpoint, std::string_view host);

// Building blocks, exposed for tests and for later stages (explain, L7).
// host_matches: a wildcard never matches an IP literal (10.1.2.3, or IPv6 without brackets).
bool host_matches(const HostPattern& pattern, std::string_view host);
bool binary_matches(const BinaryPattern& pattern, const Caller& caller);
bool path_glob_matches(std::string_view glob, std::string_view path);    // '/'-segmented * and **
bool value_glob_matches(std::string_view glob, std::string_view value);  // '*' (or '**') matches any run
std::string format_host_port(std::string_view host, uint16_t port);      // "h:443", "[::1]:443"

}  // namespace egressd::policy
