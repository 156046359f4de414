// PolicyStore: the policy in force. A reload loads and validates on the side and swaps snapshots only on
// success; sessions keep the snapshot they decided with. Not thread-safe: owned by the event loop thread.
#pragma once

#include <memory>
#include <string>

#include "policy/loader.h"
#include "policy/policy.h"

namespace egressd::policy {

struct ReloadResult {
  enum class Kind { Applied, Unchanged, Rejected };
  Kind kind = Kind::Unchanged;
  std::string hash;   // the hash now in force
  LoadErrors errors;  // when Rejected

  static ReloadResult applied(std::string h) { return {Kind::Applied, std::move(h), {}}; }
  static ReloadResult unchanged(std::string h) { return {Kind::Unchanged, std::move(h), {}}; }
  static ReloadResult rejected(std::string h, LoadErrors e) {
    return {Kind::Rejected, std::move(h), std::move(e)};
  }
};

class PolicyStore {
 public:
  // A store over a file; `initial` is its first successful load.
  PolicyStore(std::string path, std::shared_ptr<const Policy> initial);

  const std::shared_ptr<const Policy>& current() const { return current_; }
  const std::string& path() const { return path_; }

  // Re-reads the file. On failure the current snapshot stays in force.
  ReloadResult reload();

  // Installs an already loaded policy (e.g. loaded off the event loop) under the same rules.
  ReloadResult install(Result<std::shared_ptr<const Policy>, LoadErrors> next);

 private:
  std::string path_;
  std::shared_ptr<const Policy> current_;
};

}  // namespace egressd::policy
