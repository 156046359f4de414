// One deny-log line as `egressd suggest` reads it, and what kind of denial it records. The deny log is
// egressd's own JSON-lines output (proxy/decision_log.h); a line that is not one JSON object with the
// fields below, of the right types, is reported with its line number and skipped, never guessed at.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::policy {

struct Denial {
  int line = 0;                       // 1-based, in the log
  std::string event;                  // "deny", "audit", "revoked", "limit", ...
  std::optional<std::string> binary;  // null: the caller could not be identified
  std::vector<std::string> ancestors;
  std::string method;  // "CONNECT", "GET", ...
  std::string host;    // as the proxy parsed it: lowercase, an IPv6 literal without brackets
  uint16_t port = 0;
  std::string url;   // absolute URL of an HTTP request; empty for a CONNECT
  std::string rule;  // the rule whose HTTP rules refused (L7), else empty
  std::string
      http_rule;       // what decided an L7 denial ("no allow rule matched", "deny_rules[0] ..."), or empty
  std::string engine;  // "ssrf" when destination safety refused, else empty
  std::string reason;
  std::vector<std::string> redirected_by;  // each hop as "302 GET http://a/x -> http://b/y", oldest first
  std::string policy_hash;
};

struct DenyLogProblem {
  int line = 0;
  std::string message;
};

struct DenyLog {
  std::vector<Denial> denials;
  std::vector<DenyLogProblem> problems;  // malformed lines, skipped
};

// Every line of `text`; blank lines are ignored.
DenyLog read_deny_log(std::string_view text);

// What a denial is, for deciding whether a rule can allow it.
enum class DenialKind {
  Connection,  // decide() refused: no rule lists this binary with host:port
  Request,     // the endpoint's HTTP rules had no allow rule (or preset) for the method and path
  NotPolicy,   // anything a rule cannot or must not change: see `why`
};

struct DenialClass {
  DenialKind kind = DenialKind::NotPolicy;
  std::string why;  // NotPolicy: a sentence saying why it is not turned into an allow
};

// Only the denials decide() and decide_http() give for a missing rule count; identity, digests, limits,
// destination safety, deny rules, refused request paths, revocations and anything unknown do not.
DenialClass classify_denial(const Denial& denial);

// The path and query of an absolute URL ("https://h:1/a/b?x=1" -> "/a/b", "x=1"); nullopt if it has none.
struct UrlTarget {
  std::string path;
  std::string query;
};
std::optional<UrlTarget> url_target(std::string_view url);

}  // namespace egressd::policy
