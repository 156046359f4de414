#include "policy/store.h"

#include <utility>

namespace egressd::policy {

PolicyStore::PolicyStore(std::string path, std::shared_ptr<const Policy> initial)
    : path_(std::move(path)), current_(std::move(initial)) {}

ReloadResult PolicyStore::reload() {
  return install(load_policy_file(path_));
}

ReloadResult PolicyStore::install(Result<std::shared_ptr<const Policy>, LoadErrors> next) {
  std::string current_hash = current_ != nullptr ? current_->source_hash : std::string();
  if (!next) return ReloadResult::rejected(std::move(current_hash), std::move(next.error()));
  if (current_ != nullptr && (*next)->source_hash == current_hash)
    return ReloadResult::unchanged(current_hash);
  current_ = std::move(*next);  // sessions that already decided keep their own snapshot
  return ReloadResult::applied(current_->source_hash);
}

}  // namespace egressd::policy
