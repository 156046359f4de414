// `egressd suggest`: turns deny-log lines into the policy YAML that allows what was denied and nothing
// more. Grouped by binary and host:port; merged into a given policy's own rules where that widens nothing
// (a binary joins a rule whose every endpoint it was denied, an endpoint joins a rule whose every binary
// was denied it), else a new rule per binary; an HTTP denial adds exactly its method and path to the
// endpoint that refused it. No wildcard is ever written. Denials no rule should change (identity, digests,
// limits, destination safety, deny rules) become comments saying why. The result is loaded and every
// suggested denial checked with explain() before it is returned. Pure: the caller reads the files.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "policy/denial.h"
#include "policy/policy.h"

namespace egressd::policy {

// The policy to merge into: its text and what the loader made of that text.
struct BasePolicy {
  std::string text;
  std::shared_ptr<const Policy> policy;  // its source_path names the file in comments and locations
};

struct Suggestion {
  std::string yaml;                  // a complete policy: the base with additions, or a new one
  std::vector<std::string> changes;  // what was added, one sentence each (also comments atop `yaml`)
  std::vector<std::string> skipped;  // "line N: why" ("lines N, M: why"), for lines not turned into allows
                                     // (also comments)
  std::size_t skipped_lines = 0;     // how many lines `skipped` covers
  std::size_t allowed = 0;           // denials the result was checked to allow
};

// `log_name` names the deny log in comments. Without `base`, a new policy. Fails only when the result
// would not load or would not allow what it claims to (a base laid out in a way the edits cannot follow).
Result<Suggestion, std::string> suggest(const DenyLog& log, const std::string& log_name,
                                        const BasePolicy* base);

}  // namespace egressd::policy
