// `egressd check FILE...`: validate policy files, printing FILE:LINE:COL errors and warnings.
#include <cstdio>
#include <string>

#include "policy/loader.h"
#include "proxy/commands.h"

namespace egressd::proxy {

int command_check(const Args& files) {
  if (files.empty()) {
    std::fputs("egressd check: name at least one policy file\n", stderr);
    return 2;
  }
  int status = 0;
  for (const auto file : files) {
    auto loaded = policy::load_policy_file(std::string(file));
    if (!loaded) {
      std::fputs(policy::format_errors(loaded.error()).c_str(), stdout);
      std::fprintf(stdout, "%s: invalid (%zu error%s)\n", std::string(file).c_str(), loaded.error().size(),
                   loaded.error().size() == 1 ? "" : "s");
      status = 1;
      continue;
    }
    for (const auto& w : (*loaded)->warnings) {
      std::fprintf(stdout, "%s:%d:%d: warning: %s\n", w.where.file.c_str(), w.where.line, w.where.col,
                   w.message.c_str());
    }
    std::fprintf(stdout, "%s: ok (%zu rules, hash %s)\n", std::string(file).c_str(), (*loaded)->rules.size(),
                 (*loaded)->source_hash.c_str());
  }
  return status;
}

}  // namespace egressd::proxy
