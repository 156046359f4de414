// Inside `egressd suggest` (policy/suggest.h): the denials it works on, grouped, and how denied connections
// are merged into a policy's own rules without widening it. A binary joins a rule only when it was denied
// every host:port the rule lists (exact hosts, no `redirects`); an endpoint joins a rule only when every
// executable the rule's binaries match (exact entries, no `children`) was denied it. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/denial.h"
#include "policy/policy.h"
#include "policy/suggest.h"

namespace egressd::policy {

// A denial suggest may turn into an allow, with what the policy must then say. Points into a DenyLog.
struct Candidate {
  const Denial* denial = nullptr;
  DenialKind kind = DenialKind::Connection;
  std::string binary;
  std::string host;                  // as the loader writes it (parse_host_pattern's text)
  std::string method;                // Request: what the rule must allow
  std::string path;                  // Request: the path as decide_http() evaluates it
  std::optional<UrlTarget> request;  // an HTTP request (not a CONNECT): what explain() is asked
};

// Denied connections of one binary to one host:port.
struct ConnectionGroup {
  std::string binary;
  std::string host;
  uint16_t port = 0;
  std::vector<const Candidate*> members;
  bool own_rule = false;  // merging it into an existing rule did not allow it: a rule of its own
  bool dropped = false;   // not turned into an allow (the reason is recorded where it was dropped)
};

// Refused requests of one binary with one method and path to one host:port.
struct RequestGroup {
  std::string binary;
  std::string host;
  uint16_t port = 0;
  std::string method;
  std::string path;
  std::vector<const Candidate*> members;
  bool dropped = false;
};

// What joins the base policy's rules (by rule index), and the groups still needing a rule of their own.
struct Merges {
  std::map<std::size_t, std::vector<std::string>> binaries;  // binary paths to add
  std::map<std::size_t, std::vector<std::pair<std::string, std::vector<uint16_t>>>> endpoints;  // host, ports
  std::vector<ConnectionGroup*> unmerged;  // not dropped, not merged: in file order of the log
  std::vector<std::string> changes;        // one sentence per rule changed
};

// `groups` are all of them (dropped ones are skipped; own_rule ones are never merged).
Merges plan_merges(const BasePolicy& base, std::vector<ConnectionGroup>& groups);

// " (log lines 1, 4); log line 4 was reached by a redirect: 302 GET http://a/ -> http://b/".
std::string members_text(const std::vector<const Candidate*>& members);

// `text` made fit for a YAML comment: one line, control characters as '?'.
std::string comment_text(std::string_view text);

// "p.yaml:12".
std::string where_text(const SourceLocation& where);

inline constexpr std::size_t kMaxLinesNamed = 10;  // log line numbers listed per change or skipped reason

}  // namespace egressd::policy
