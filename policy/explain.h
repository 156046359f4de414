// Why a policy allows or denies one connection or HTTP request, for `egressd explain`. The verdict comes
// from the functions the proxy itself runs, in its order: decide(), the binary's sha256 pin,
// decide_http(), then check_destination() for an IP-literal host; so explain cannot disagree with the
// proxy. Around it: where the deciding rule, endpoint, binary entry and HTTP rule stand in the file, and
// for a denial the nearest rules and why each did not match. Pure (no I/O); valid while the Policy lives.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/matcher.h"
#include "policy/policy.h"

namespace egressd::policy {

struct ExplainQuery {
  Caller caller;     // the executable as /proc/PID/exe names it (symlinks resolved), ancestors nearest first
  std::string host;  // as the proxy parses it: lowercase, an IPv6 literal without brackets
  uint16_t port = 0;
  // An HTTP request (absolute-form, or inside a terminated tunnel); none: the connection (a CONNECT).
  std::optional<std::string> method;  // as sent (the parser gives upper case)
  std::string path;                   // raw, up to '?'
  std::string query;                  // raw, after '?'
  // The executable's SHA-256 (lowercase hex) when the caller could hash it: checked against a pin as the
  // proxy does. Unknown: a pin is reported as not checked.
  std::optional<std::string> exe_sha256;
};

enum class ExplainStage {
  Policy,       // decide(): no rule lists both the binary and host:port
  Pin,          // the allowing binary entry's sha256 differs from the executable's
  HttpRules,    // decide_http(): the endpoint's HTTP rules refuse the request
  Destination,  // check_destination(): the IP-literal host may not be dialled
};

// A rule near a denied query (it lists the binary, or an endpoint for the host) and why it did not allow.
struct NearRule {
  const Rule* rule = nullptr;
  bool lists_binary = false;
  bool lists_host = false;
  std::vector<std::string> why_not;  // sentences naming FILE positions as line:col
};

struct Explanation {
  Verdict verdict = Verdict::Deny;  // what the proxy does: Allow too when audit lets a would-be denial by
  bool audited = false;             // audit mode lets it through although `reason` says it would be denied
  ExplainStage stage = ExplainStage::Policy;  // on deny (or audited): which check refused
  std::string reason;                         // the proxy's reason, word for word
  const Rule* rule = nullptr;                 // the allowing rule (audit: the rule in audit mode, if any),
                                              // or the rule whose HTTP rules refused
  const Endpoint* endpoint = nullptr;         // its endpoint for host:port (null when audit let it by)
  const BinaryPattern* binary = nullptr;      // its binary entry matching the caller
  std::string http_rule;                      // decide_http()'s `rule`: "allow GET /repos/**", ...
  std::optional<SourceLocation> http_rule_where;  // the HTTP rule (or endpoint, for a preset) that decided
  std::vector<std::string> http_notes;  // on an HTTP denial: each rule of the endpoint and why it did not
                                        // allow, or which deny rule matched
  std::vector<std::string> rules_considered;  // decide()'s: rules whose endpoint matched host:port
  std::vector<std::string> facts;             // destination safety, pins, TLS: what else applies
  std::vector<NearRule> nearest;              // on a denial by the policy: best first, at most kMaxNearRules
};

inline constexpr std::size_t kMaxNearRules = 8;

Explanation explain(const Policy& policy, const ExplainQuery& query);

const char* stage_name(ExplainStage stage);  // "policy", "sha256 pin", "http rules", "destination"

}  // namespace egressd::policy
