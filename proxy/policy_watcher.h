// PolicyWatcher: notices changes to the policy file and asks the server to reload. It watches the
// directories (not the file), so that an in-place write, an editor's write-and-rename and a Kubernetes
// ConfigMap's `..data` symlink swap are all seen. Events are coalesced for a short moment; a reload of
// an unchanged file is a no-op, so spurious events cost nothing.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "proxy/uv_handle.h"

namespace egressd::proxy {

class Server;

class PolicyWatcher {
 public:
  PolicyWatcher(uv_loop_t* loop, std::string policy_path, Server& server);
  PolicyWatcher(const PolicyWatcher&) = delete;
  PolicyWatcher& operator=(const PolicyWatcher&) = delete;

  Result<void, std::string> start();
  void stop();

 private:
  static void uv_on_change(uv_fs_event_t* handle, const char* filename, int events, int status) noexcept;
  static void uv_on_settled(uv_timer_t* timer) noexcept;
  void on_change();
  void on_settled();
  Result<void, std::string> watch_directories();  // the file's directory and its resolved target's
  bool concerns_policy(std::string_view name) const;

  uv_loop_t* loop_;
  std::string path_;
  Server& server_;
  std::string target_name_;  // basename of the file's resolved target
  std::vector<std::string> watched_dirs_;
  std::vector<std::unique_ptr<UvHandle<uv_fs_event_t>>> watches_;
  UvHandle<uv_timer_t> settle_;
};

}  // namespace egressd::proxy
