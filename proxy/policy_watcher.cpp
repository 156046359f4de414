#include "proxy/policy_watcher.h"

#include <climits>
#include <cstdlib>

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/server.h"

namespace egressd::proxy {
namespace {

constexpr uint64_t kSettleMs = 50;  // editors write in bursts; one reload per burst

std::string_view basename_of(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string dirname_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

PolicyWatcher::PolicyWatcher(uv_loop_t* loop, std::string policy_path, Server& server)
    : loop_(loop), path_(std::move(policy_path)), server_(server) {}

Result<void, std::string> PolicyWatcher::start() {
  if (int rc = settle_.init(this, [this](uv_timer_t* h) { return uv_timer_init(loop_, h); }); rc != 0) {
    return unexpected(fmt::format("uv_timer_init: {}", uv_strerror(rc)));
  }
  return watch_directories();
}

void PolicyWatcher::stop() {
  watches_.clear();
  watched_dirs_.clear();
  settle_.close();
}

Result<void, std::string> PolicyWatcher::watch_directories() {
  std::vector<std::string> dirs{dirname_of(path_)};
  char resolved[PATH_MAX];
  if (realpath(path_.c_str(), resolved) != nullptr) {
    target_name_ = std::string(basename_of(resolved));
    const std::string target_dir = dirname_of(resolved);
    if (target_dir != dirs.front()) dirs.push_back(target_dir);
  }
  if (dirs == watched_dirs_) return {};
  watches_.clear();
  watched_dirs_.clear();
  for (const auto& dir : dirs) {
    auto watch = std::make_unique<UvHandle<uv_fs_event_t>>();
    if (int rc = watch->init(this, [this](uv_fs_event_t* h) { return uv_fs_event_init(loop_, h); });
        rc != 0) {
      return unexpected(fmt::format("uv_fs_event_init: {}", uv_strerror(rc)));
    }
    if (int rc = uv_fs_event_start(watch->get(), &PolicyWatcher::uv_on_change, dir.c_str(), 0); rc != 0) {
      if (dir == dirs.front()) return unexpected(fmt::format("cannot watch {}: {}", dir, uv_strerror(rc)));
      log::warn("cannot watch {}: {}", dir, uv_strerror(rc));  // the parent directory is still watched
      continue;
    }
    log::debug("watching {} for policy changes", dir);
    watches_.push_back(std::move(watch));
    watched_dirs_.push_back(dir);
  }
  return {};
}

void PolicyWatcher::uv_on_change(uv_fs_event_t* handle, const char* filename, int /*events*/,
                                 int status) noexcept {
  auto* self = static_cast<PolicyWatcher*>(handle->data);
  if (self == nullptr) return;
  if (status != 0) log::warn("policy watch: {}", uv_strerror(status));
  if (status == 0 && filename != nullptr && !self->concerns_policy(filename)) return;
  self->on_change();
}

bool PolicyWatcher::concerns_policy(std::string_view name) const {
  // The file itself (written in place, or renamed over), its symlink target, or a Kubernetes
  // ConfigMap's "..data" / "..2026_..." entries. Other files in the directory (logs!) are not ours.
  return name == basename_of(path_) || name == target_name_ || name.starts_with("..");
}

void PolicyWatcher::on_change() {
  if (settle_) uv_timer_start(settle_.get(), &PolicyWatcher::uv_on_settled, kSettleMs, 0);
}

void PolicyWatcher::uv_on_settled(uv_timer_t* timer) noexcept {
  auto* self = static_cast<PolicyWatcher*>(timer->data);
  if (self == nullptr) return;
  self->on_settled();
}

void PolicyWatcher::on_settled() {
  server_.reload_policy();
  // The file may now resolve into another directory (a ConfigMap's new ..data target): follow it.
  if (auto watching = watch_directories(); !watching) log::error("policy watch: {}", watching.error());
}

}  // namespace egressd::proxy
