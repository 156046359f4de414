// decide_http(): the pure per-request (L7) policy function for `protocol: rest` endpoints, and the request
// path normalization it evaluates on. No I/O, clock or logging; the same inputs give the same HttpDecision.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "policy/matcher.h"
#include "policy/policy.h"

namespace egressd::policy {

// One HTTP request as the proxy parsed it. Views into the caller's buffers, read during the call only.
struct HttpRequestView {
  std::string_view method;  // as sent; the head parser gives upper case
  std::string_view path;    // the raw request-target up to '?', e.g. "/repos/a%2Db" (never normalized)
  std::string_view query;   // the raw query after '?', without it; empty when there is none
};

struct HttpDecision {
  Verdict verdict = Verdict::Deny;  // in audit mode a would-be deny is Allow with `audited` set
  bool audited = false;  // the request would have been denied, and the endpoint's `enforcement: audit` or
                         // the rule's mode (its own `mode`, else the policy's) is audit
  std::string rule;      // what decided: "access: read-only", "allow GET /repos/**",
                         // "deny_rules[0] DELETE /repos/**", "no allow rule matched", ...
  std::string reason;    // a sentence for the 403 body and the logs, word for word; it names the
                         // rule, method, path and host:port, and never the query's values
};

// Decides one request on a connection that decide() allowed: `rule` and `endpoint` are that Decision's
// (the endpoint must belong to the rule); `host` and `port` are what the connection was decided on and
// appear only in the reason. An endpoint without `protocol: rest` is not inspected: always Allow.
// Otherwise the request is allowed when (its `access` preset allows the method, or one of its `rules`
// matches) and none of its `deny_rules` matches; a path that normalize_request_path() refuses is denied.
// In audit (the endpoint's `enforcement`, or the rule's mode), a would-be deny is Allow with `audited`.
HttpDecision decide_http(const Rule& rule, const Endpoint& endpoint, std::string_view host, uint16_t port,
                         const HttpRequestView& request);

// The path decide_http() evaluates: an origin-form path ("/...") with percent-encoded unreserved
// characters (ALPHA, DIGIT, '-', '.', '_', '~') decoded and every other escape kept, in upper-case hex.
// Fails closed, returning a phrase such as "path contains an encoded slash (%2F)", on anything an origin
// server might read differently from the policy: not starting with '/' (asterisk- and absolute-form too),
// an invalid escape, a NUL or other control byte (raw or encoded), raw non-ASCII, a space, '#', '?', a
// backslash (raw or %5C), %2F, an empty segment ("//"; never collapsed), or a dot-segment ("." or "..",
// also encoded as %2E, also before ";params" as in "..;x").
Result<std::string, std::string> normalize_request_path(std::string_view path);

}  // namespace egressd::policy
