// The built egressd, run as a child process for one test: a temporary directory holds its policy, deny
// and access logs, ready file and console output (stderr). It listens on 127.0.0.1:0 and the constructor
// returns once the ready file names the port. The destructor stops it (SIGTERM, then SIGKILL after 5 s)
// and reaps it. Construct it on the test's main thread (see Child).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/json.h"
#include "tests/support/policy_yaml.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace egressd::test {

namespace detail {
bool set_egressd_binary(const char* path);
}  // namespace detail

#ifdef EGRESSD_BINARY
// tests/CMakeLists.txt defines EGRESSD_BINARY (the egressd target's file) for e2e_tests only; including
// this header there makes it the binary Egressd runs.
[[maybe_unused]] inline const bool kEgressdBinaryKnown = detail::set_egressd_binary(EGRESSD_BINARY);
#endif

// The egressd executable under test: $EGRESSD_BINARY if set, else the build's. Throws if neither.
std::string egressd_binary();

enum class PolicyLayout {
  File,       // DIR/policy.yaml, a regular file
  ConfigMap,  // as a Kubernetes ConfigMap volume: DIR/config/policy.yaml -> ..data/policy.yaml,
              // ..data -> ..2026_v1 (a directory); swap_policy_symlink() replaces ..data atomically
};

// Egressd's network: the host's, or a network namespace of its own with only loopback (up), so that
// nothing it dials can leave the machine: an address that is not loopback is unreachable there.
enum class EgressdNetwork { Host, Isolated };

// The user egressd runs as (through as_user in process.h), as a systemd unit with User=, Group=,
// CapabilityBoundingSet= and AmbientCapabilities= would run it. Its directory (policy, logs, ready file,
// state) is handed to uid:gid first.
struct EgressdUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<std::string> capabilities = {};  // setpriv's names: "sys_ptrace", "dac_read_search"
};

class Egressd {
 public:
  // Writes `policy_yaml` and starts `egressd run --listen 127.0.0.1:0 --policy ... --deny-log ...
  // --access-log ... --ready-file ... <extra_args>`. Throws (with its stderr) if it is not ready within
  // `ready_deadline` or exits first. Without `user`, it runs as the test does. `env` ("K=V") is added
  // to its environment.
  explicit Egressd(const std::string& policy_yaml, std::vector<std::string> extra_args = {},
                   PolicyLayout layout = PolicyLayout::File,
                   std::chrono::milliseconds ready_deadline = std::chrono::milliseconds(10'000),
                   EgressdNetwork network = EgressdNetwork::Host, std::optional<EgressdUser> user = {},
                   std::vector<std::string> env = {});
  Egressd(const Egressd&) = delete;
  Egressd& operator=(const Egressd&) = delete;
  ~Egressd();

  std::string url() const { return "http://" + host_port(); }  // for curl --proxy
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  pid_t pid() const { return child_->pid(); }
  // `argv` as run in egressd's network: itself on the host network, else under nsenter into egressd's
  // namespace (the program keeps its own executable, which is what egressd identifies).
  std::vector<std::string> in_network(std::vector<std::string> argv) const;
  const TempDir& dir() const { return dir_; }
  // The CA egressd generated on its first run (in the --state-dir it was given): what clients trust.
  std::string ca_path() const { return dir_.file("state") + "/ca/ca.pem"; }

  // The path egressd was given with --policy (a symlink in the ConfigMap layout).
  const std::string& policy_path() const { return policy_path_; }
  // open(O_TRUNC) + write on the path egressd watches: the same inode (through symlinks).
  void write_policy_in_place(const std::string& yaml);
  // Write a sibling file, rename() it over policy_path(): a new inode, old or new seen whole.
  void write_policy_by_rename(const std::string& yaml);
  // ConfigMap layout only, as the kubelet does it: new ..2026_vN dir, ..data_tmp -> it, rename over
  // ..data, then remove the previous version's directory.
  void swap_policy_symlink(const std::string& yaml);
  void sighup();

  // Console output (its stderr) so far, and how many times `text` occurs in it.
  std::string stderr_text() const;
  size_t stderr_count(std::string_view text) const;
  bool wait_for_stderr(std::string_view text, std::chrono::milliseconds deadline = std::chrono::seconds(5));
  bool wait_for_stderr_count(std::string_view text, size_t count,
                             std::chrono::milliseconds deadline = std::chrono::seconds(5));

  // Decision logs, one parsed JSON value per complete line.
  std::vector<Json> deny_log_lines() const;
  std::vector<Json> access_log_lines() const;
  bool wait_for_deny_lines(size_t count, std::chrono::milliseconds deadline = std::chrono::seconds(5));
  bool wait_for_access_lines(size_t count, std::chrono::milliseconds deadline = std::chrono::seconds(5));
  const std::string& deny_log_path() const { return deny_log_path_; }
  const std::string& access_log_path() const { return access_log_path_; }

  // Console output and both decision logs as text: for INFO() when a check fails.
  std::string diagnostics() const;

  bool running() { return child_->running(); }
  // Sends `sig` (SIGTERM, SIGINT), waits up to `grace`, then SIGKILLs; reaps. Returns the exit code (or
  // -signal); once stopped, returns the same again.
  int stop(int sig = SIGTERM, std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  TempDir dir_;
  std::string policy_path_;
  std::string deny_log_path_;
  std::string access_log_path_;
  std::string ready_path_;
  std::string stderr_path_;
  int configmap_version_ = 1;
  EgressdNetwork network_ = EgressdNetwork::Host;
  uint16_t port_ = 0;
  std::optional<Child> child_;
};

}  // namespace egressd::test
