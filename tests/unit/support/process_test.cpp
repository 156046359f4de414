#include "tests/support/process.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>

#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace egressd::test {
namespace {

using namespace std::chrono_literals;

// True once `pid` no longer runs: gone, or a zombie waiting for a reaper that is not us.
bool process_gone(pid_t pid) {
  const std::optional<std::string> stat = try_read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  const size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z';
}

TEST_CASE("run() returns the exit code and what the program wrote to stdout and stderr") {
  const RunResult result = run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(result.exit_code == 3);
  CHECK(result.out == "out\n");
  CHECK(result.err == "err\n");
  CHECK_FALSE(result.timed_out);
}

TEST_CASE("run() reports a program killed by a signal as minus the signal number") {
  CHECK(run({"sh", "-c", "kill -TERM $$"}).exit_code == -SIGTERM);
}

TEST_CASE("run() reports the child's pid") {
  const RunResult result = run({"sh", "-c", "echo $$"});
  CHECK(result.out == std::to_string(result.pid) + "\n");
}

TEST_CASE("run() feeds a megabyte of stdin while draining stdout without deadlocking" *
          doctest::timeout(30)) {
  std::string input;
  for (int i = 0; input.size() < (1 << 20); ++i) input += std::to_string(i) + "\n";
  const RunResult result = run({"cat"}, {.stdin_text = input});
  CHECK(result.exit_code == 0);
  CHECK(result.out.size() == input.size());
  CHECK((result.out == input));
}

TEST_CASE("run() kills the program at the deadline and says it timed out" * doctest::timeout(30)) {
  const auto start = std::chrono::steady_clock::now();
  const RunResult result = run({"sleep", "30"}, {.timeout = 200ms});
  CHECK(result.timed_out);
  CHECK(result.exit_code == -SIGKILL);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("run() kills what the program left running in its process group" * doctest::timeout(30)) {
  const RunResult result = run({"sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"});
  REQUIRE(result.exit_code == 0);
  const pid_t stray = static_cast<pid_t>(std::stol(result.out));
  CHECK(wait_for([&] { return process_gone(stray); }, 5000ms));
}

TEST_CASE("run() adds environment variables and drops the developer's proxy settings") {
  ::setenv("HTTPS_PROXY", "http://proxy.invalid:3128", 1);
  ::setenv("no_proxy", "127.0.0.1", 1);
  const RunResult result =
      run({"sh", "-c", "echo \"$FOO\"; env | grep -i _proxy= || true"}, {.env = {"FOO=bar"}});
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("no_proxy");
  CHECK(result.out == "bar\n");
}

TEST_CASE("run() starts the program in the working directory asked for") {
  const TempDir dir;
  CHECK(run({"pwd"}, {.working_dir = dir.path()}).out == dir.path() + "\n");
}

TEST_CASE("run() throws when the program cannot be executed") {
  CHECK_THROWS_WITH(run({"/nonexistent/program"}), doctest::Contains("/nonexistent/program"));
  CHECK_THROWS(run({"no-such-program-in-path-egressd"}));
}

TEST_CASE("a Child's exit code and output are available once it exits" * doctest::timeout(30)) {
  Child child({"sh", "-c", "echo hi; echo oops >&2; exit 4"});
  CHECK(child.pid() > 0);
  CHECK(child.wait(10s) == 4);
  CHECK_FALSE(child.running());
  CHECK(child.out() == "hi\n");
  CHECK(child.err() == "oops\n");
}

TEST_CASE("Child::wait returns nothing while the process still runs, then kill_and_reap ends it" *
          doctest::timeout(30)) {
  Child child({"sleep", "30"});
  CHECK_FALSE(child.wait(50ms).has_value());
  CHECK(child.running());
  CHECK(child.kill_and_reap() == -SIGKILL);
  CHECK_FALSE(child.running());
}

TEST_CASE("a Child still running is killed and reaped by its destructor" * doctest::timeout(30)) {
  pid_t pid = 0;
  {
    Child child({"sleep", "30"});
    pid = child.pid();
  }
  CHECK(process_gone(pid));
}

TEST_CASE("Child::signal delivers a signal the program handles" * doctest::timeout(30)) {
  const TempDir dir;
  const std::string marker = dir.file("ready");
  Child child(
      {"sh", "-c", "trap 'echo got-hup; exit 7' HUP; touch " + marker + "; while :; do sleep 0.05; done"});
  REQUIRE(wait_for([&] { return file_exists(marker); }, 10s));
  child.signal(SIGHUP);
  CHECK(child.wait(10s) == 7);
  CHECK(child.out() == "got-hup\n");
}

TEST_CASE("real_path_of finds a program in PATH and resolves its symlinks like /proc/PID/exe") {
  const std::string sh = real_path_of("sh");
  CHECK(sh == std::filesystem::canonical("/bin/sh").string());
  CHECK(real_path_of("/bin/sh") == sh);
  CHECK_THROWS(real_path_of("no-such-program-in-path-egressd"));
}

TEST_CASE("copy_executable makes a runnable 0755 copy at a new path" * doctest::timeout(30)) {
  const TempDir dir;
  const std::string copy = copy_executable(real_path_of("curl"), dir, "curl");
  CHECK(copy == dir.file("curl"));
  struct stat st {};
  REQUIRE(::stat(copy.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  const RunResult result = run({copy, "--version"});
  CHECK(result.exit_code == 0);
  CHECK(result.out.starts_with("curl "));
  CHECK(real_path_of(copy) == copy);
}

}  // namespace
}  // namespace egressd::test
