// `egressd check [--strict] FILE...`: validate policy files, printing FILE:LINE:COL errors, then warnings
// and notes: the loader's, and what policy/lint.h finds (rules that can never match, duplicate endpoints,
// binaries missing on this host, a policy path that is a symlink).
#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "policy/lint.h"
#include "policy/loader.h"
#include "proxy/commands.h"

namespace egressd::proxy {

int command_check(const Args& args) {
  bool strict = false;
  std::vector<std::string> files;
  for (const auto arg : args) {
    if (arg == "--strict") {
      strict = true;
    } else if (arg.starts_with("--")) {
      std::fprintf(stderr, "egressd check: unknown option '%s'\n", std::string(arg).c_str());
      return 2;
    } else {
      files.emplace_back(arg);
    }
  }
  if (files.empty()) {
    std::fputs("egressd check: name at least one policy file\n", stderr);
    return 2;
  }
  int status = 0;
  for (const std::string& file : files) {
    auto loaded = policy::load_policy_file(file);
    if (!loaded) {
      std::fputs(policy::format_errors(loaded.error()).c_str(), stdout);
      std::fprintf(stdout, "%s: invalid (%zu error%s)\n", file.c_str(), loaded.error().size(),
                   loaded.error().size() == 1 ? "" : "s");
      status = 1;
      continue;
    }
    std::vector<policy::LintFinding> findings;
    for (const auto& w : (*loaded)->warnings)
      findings.push_back({policy::LintLevel::Warning, w.where, w.message});
    for (auto& finding : policy::lint_policy(**loaded)) findings.push_back(std::move(finding));
    std::stable_sort(findings.begin(), findings.end(), [](const auto& a, const auto& b) {
      return std::pair(a.where.line, a.where.col) < std::pair(b.where.line, b.where.col);
    });
    std::size_t warnings = 0;
    std::size_t notes = 0;
    for (const auto& finding : findings) {
      (finding.level == policy::LintLevel::Warning ? warnings : notes) += 1;
      std::fprintf(stdout, "%s\n", policy::format_finding(finding).c_str());
    }
    std::string counts;
    if (warnings > 0) counts += ", " + std::to_string(warnings) + (warnings == 1 ? " warning" : " warnings");
    if (notes > 0) counts += ", " + std::to_string(notes) + (notes == 1 ? " note" : " notes");
    std::fprintf(stdout, "%s: ok (%zu rules, hash %s%s)\n", file.c_str(), (*loaded)->rules.size(),
                 (*loaded)->source_hash.c_str(), counts.c_str());
    if (strict && warnings > 0) status = 1;
  }
  return status;
}

}  // namespace egressd::proxy
