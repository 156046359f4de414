// Running programs from tests: run() for a command that finishes (output captured, killed at a
// deadline), Child for a background process (output captured to files, killed and reaped when the Child
// dies). Children get their own process group, die with the thread that spawned them (PR_SET_PDEATHSIG:
// spawn from the test's main thread), and inherit the environment minus every *_proxy variable and every
// variable that changes whom a client trusts (CURL_CA_BUNDLE, GIT_SSL_CAINFO, SSL_CERT_FILE, ...), so a
// developer's settings never leak into a test; tests pass proxies and CAs explicitly. Spawning ignores
// SIGPIPE in the test process (children get the default back). Failures to spawn throw std::runtime_error.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/temp_dir.h"
#include "tests/support/unique_fd.h"

namespace egressd::test {

struct RunOptions {
  std::vector<std::string> env = {};  // "K=V", added to the inherited environment (replacing the same K)
  std::string stdin_text = {};        // written to the child's stdin, which is then closed
  std::chrono::milliseconds timeout{30'000};
  std::string working_dir = {};  // empty: the test's own
};

struct RunResult {
  int exit_code = -1;  // the exit status, or -N when killed by signal N
  std::string out;
  std::string err;
  bool timed_out = false;  // killed (SIGKILL, whole process group) at the deadline
  pid_t pid = 0;           // the child's pid while it ran (as egressd's logs saw it)
};

// Runs argv[0] (searched in PATH when it has no '/') to completion or to the timeout.
RunResult run(std::vector<std::string> argv, RunOptions options = {});

struct ChildOptions {
  std::vector<std::string> env = {};  // as RunOptions::env
  std::string working_dir = {};
  std::string stdout_path = {};  // empty: a file in a TempDir the Child owns
  std::string stderr_path = {};
};

// One background process. Its stdin is /dev/null; stdout and stderr go to files that can be read at any
// time. The destructor SIGKILLs its process group if it still runs and reaps it.
class Child {
 public:
  explicit Child(std::vector<std::string> argv, ChildOptions options = {});
  Child(Child&& other) noexcept;
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  // True until the process has exited and been reaped (reaps it if it has exited).
  bool running();
  // Waits up to `deadline` for the exit: the exit code (or -signal), or nothing if it still runs.
  std::optional<int> wait(std::chrono::milliseconds deadline);
  // Sends `sig` to the process itself (not its group). No-op once reaped.
  void signal(int sig);
  // SIGKILL to the process group, then reap. Returns the exit code (or -signal).
  int kill_and_reap();
  std::optional<int> exit_code() const { return exit_code_; }

  std::string out() const;  // what it wrote to stdout so far
  std::string err() const;  // what it wrote to stderr so far
  const std::string& stdout_path() const { return stdout_path_; }
  const std::string& stderr_path() const { return stderr_path_; }

 private:
  bool reap_if_exited();

  std::optional<TempDir> output_dir_;  // only when the options named no output files
  std::string stdout_path_;
  std::string stderr_path_;
  pid_t pid_ = 0;
  UniqueFd pidfd_;  // readable once the child exits; invalid where pidfd_open is unavailable
  std::optional<int> exit_code_;
};

// `argv` run through setpriv as uid:gid (numbers need no /etc/passwd entry) with no supplementary groups
// and no new privileges (setuid binaries grant nothing), holding only `capabilities` (setpriv's names:
// "sys_ptrace") in its bounding, inheritable and ambient sets, as systemd's User=, Group=,
// CapabilityBoundingSet= and AmbientCapabilities= give them. setpriv sets SIGKILL as the parent-death
// signal again, which the uid change clears: the child still dies with the thread that spawned it.
std::vector<std::string> as_user(uid_t uid, gid_t gid, std::vector<std::string> argv,
                                 const std::vector<std::string>& capabilities = {});

// Where /proc/PID/exe of a process running `program` points: PATH search (when no '/'), then realpath.
std::string real_path_of(std::string_view program);

// Copies the executable at `path` to dir/name with mode 0755 and returns the new path: the same bytes at a
// path a policy does not list.
std::string copy_executable(const std::string& path, const TempDir& dir, std::string name);

}  // namespace egressd::test
