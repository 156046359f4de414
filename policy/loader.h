// YAML -> Policy. The only place yaml-cpp is used; every error names file:line:col and what was expected.
// Blocking file I/O (read, realpath): call it off the event loop or at start-up.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "policy/policy.h"

namespace egressd::policy {

struct LoadError {
  SourceLocation where;  // line/col 0 when the error concerns the whole file (unreadable, empty)
  std::string message;

  // "file:line:col: message" (or "file: message" without a position).
  std::string to_string() const;
};

using LoadErrors = std::vector<LoadError>;  // never empty when returned as an error

// Loads and validates a policy file. All errors found are returned, in file order.
Result<std::shared_ptr<const Policy>, LoadErrors> load_policy_file(const std::string& path);

// Same, from text in memory; `name` stands for the file name in locations and source_path.
Result<std::shared_ptr<const Policy>, LoadErrors> load_policy_text(std::string_view text,
                                                                   const std::string& name);

// All errors as lines "file:line:col: message\n".
std::string format_errors(const LoadErrors& errors);

}  // namespace egressd::policy
