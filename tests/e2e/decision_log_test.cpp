// The decision logs as operators handle them: rotated by rename (logrotate), removed, reopened on
// SIGUSR1, and on a full disk. A line goes to whatever file is at the path now, and a log that cannot
// be written never changes or delays a decision.
#include <doctest/doctest.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "tests/e2e/scenario.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

// The policy allows curl to 127.0.0.1:1 only, so any other port is a denial.
constexpr uint16_t kAllowedPort = 1;

// curl CONNECTs to 127.0.0.1:`port`, which the policy does not allow: the status egressd answered.
std::string deny_connect(const Egressd& egressd, uint16_t port) {
  return connect_status(curl(), egressd, "http://127.0.0.1:" + std::to_string(port) + "/");
}

// The "port" of every complete line in the decision log at `path`.
std::vector<int64_t> ports_in(const std::string& path) {
  std::vector<int64_t> ports;
  for (const Json& line : parse_json_lines(read_complete_lines(path)))
    ports.push_back(line["port"].integer());
  return ports;
}

void rename_or_throw(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) throw std::runtime_error("rename " + from + " failed");
}

TEST_CASE("a deny log renamed away as logrotate does gets a fresh file for the next denial" *
          doctest::timeout(60)) {
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", kAllowedPort));
  INFO(egressd.diagnostics());
  REQUIRE(deny_connect(egressd, 2) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  const std::string rotated = egressd.deny_log_path() + ".1";
  rename_or_throw(egressd.deny_log_path(), rotated);

  CHECK(deny_connect(egressd, 3) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(ports_in(egressd.deny_log_path()) == std::vector<int64_t>{3});
  CHECK(ports_in(rotated) == std::vector<int64_t>{2});
  CHECK(egressd.wait_for_stderr("deny log " + egressd.deny_log_path() + " was moved or removed; reopened"));
}

TEST_CASE("a deny log that was removed is created again by the next denial" * doctest::timeout(60)) {
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", kAllowedPort));
  INFO(egressd.diagnostics());
  REQUIRE(deny_connect(egressd, 2) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  REQUIRE(std::remove(egressd.deny_log_path().c_str()) == 0);

  CHECK(deny_connect(egressd, 3) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(ports_in(egressd.deny_log_path()) == std::vector<int64_t>{3});
  CHECK(egressd.wait_for_stderr("deny log " + egressd.deny_log_path() + " was moved or removed; reopened"));
}

TEST_CASE("SIGUSR1 reopens both decision logs at once, creating them at their paths" * doctest::timeout(60)) {
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", kAllowedPort));
  INFO(egressd.diagnostics());
  REQUIRE(deny_connect(egressd, 2) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  const std::string rotated_deny = egressd.deny_log_path() + ".1";
  const std::string rotated_access = egressd.access_log_path() + ".1";
  rename_or_throw(egressd.deny_log_path(), rotated_deny);
  rename_or_throw(egressd.access_log_path(), rotated_access);

  REQUIRE(::kill(egressd.pid(), SIGUSR1) == 0);
  REQUIRE(egressd.wait_for_stderr("reopened decision logs on SIGUSR1"));
  CHECK(file_exists(egressd.deny_log_path()));  // before any new decision
  CHECK(file_exists(egressd.access_log_path()));
  CHECK(read_file(egressd.deny_log_path()).empty());
  CHECK(egressd.running());

  CHECK(deny_connect(egressd, 3) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(ports_in(egressd.deny_log_path()) == std::vector<int64_t>{3});
  CHECK(ports_in(rotated_deny) == std::vector<int64_t>{2});
  CHECK(egressd.stderr_count("was moved or removed") == 0);  // SIGUSR1 already followed the path
}

TEST_CASE(
    "a deny log on a full disk drops its lines with one console error, and every denial still gets 403" *
    doctest::timeout(60)) {
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", kAllowedPort), {"--deny-log", "/dev/full"});
  INFO(egressd.diagnostics());
  // Egressd writes the deny-log line before it answers, so each 403 follows its failed write.
  for (uint16_t port = 2; port <= 6; ++port) {
    CAPTURE(port);
    CHECK(deny_connect(egressd, port) == "403");
  }
  REQUIRE(egressd.wait_for_stderr_count("DENY ", 5));
  REQUIRE(egressd.wait_for_stderr("No space left on device"));
  CHECK(egressd.stderr_count("No space left on device") == 1);  // the rest wait for the 10 s report
  CHECK(egressd.running());
  CHECK(deny_connect(egressd, 7) == "403");
  CHECK(egressd.stderr_count("No space left on device") == 1);
  CHECK(egressd.running());
}

}  // namespace
}  // namespace egressd::test::e2e
