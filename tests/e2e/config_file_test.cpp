// The daemon config file end to end: `egressd run --config FILE` alone listens where the file says and
// enforces the policy it names, a flag overrides the file before or after --config, a bad file stops
// egressd with exit code 2 and FILE:LINE:COL, and `egressd run` without arguments still runs on its
// embedded defaults.
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/json.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace egressd::test::e2e {
namespace {

// egressd run with exactly `args` (no harness flags), its console in dir/egressd.stderr.
Child start(const TempDir& dir, std::vector<std::string> args, std::vector<std::string> env = {}) {
  std::vector<std::string> argv{egressd_binary(), "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Child(argv, ChildOptions{.env = std::move(env),
                                  .working_dir = dir.path(),
                                  .stdout_path = dir.file("egressd.stdout"),
                                  .stderr_path = dir.file("egressd.stderr")});
}

// The address in `ready_file` once egressd has written it; fails the test (with its console) otherwise.
std::string ready_address(Child& egressd, const std::string& ready_file) {
  std::string ready;
  const bool is_ready = wait_for(
      [&] {
        ready = try_read_file(ready_file).value_or("");
        return ready.ends_with('\n') || !egressd.running();
      },
      10s);
  INFO("egressd stderr:\n" << egressd.err());
  REQUIRE(is_ready);
  REQUIRE(ready.ends_with('\n'));
  return ready.substr(0, ready.size() - 1);
}

// A config file in dir/etc naming everything egressd needs, listening on `listen`.
std::string write_config(const TempDir& dir, const std::string& listen, const std::string& policy_yaml) {
  const std::string etc = dir.file("etc");
  std::filesystem::create_directories(etc);
  write_file(etc + "/policy.yaml", policy_yaml);
  write_file(etc + "/egressd.yaml", "listen: " + listen +
                                        "\n"
                                        "policy: policy.yaml  # relative: next to this file\n"
                                        "deny_log: " +
                                        dir.file("deny.log") + "\naccess_log: " + dir.file("access.log") +
                                        "\nstate_dir: " + dir.file("state") +
                                        "\nready_file: " + dir.file("ready") + "\n");
  return etc + "/egressd.yaml";
}

TEST_CASE("egressd run --config alone listens where the file says and enforces the policy it names" *
          doctest::timeout(90)) {
  const TempDir dir;
  LocalOrigin origin = LocalOrigin::http();
  const std::string copy = copy_executable(curl(), dir, "curl");
  const std::string config =
      write_config(dir, "127.0.0.3:0", policy_allowing(curl(), "127.0.0.1", origin.port()));
  Child egressd = start(dir, {"--config", config});
  const std::string address = ready_address(egressd, dir.file("ready"));
  INFO("egressd stderr:\n" << egressd.err());
  CHECK(address.starts_with("127.0.0.3:"));  // not the default 127.0.0.1:3128
  const std::string proxy = "http://" + address;

  CHECK(run({curl(), "-q", "-sS", "--proxy", proxy, origin.url("/hello")}).out == "hello\n");
  CHECK(run({copy, "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy,
             origin.url("/hello")})
            .out == "403");
  REQUIRE(wait_for([&] { return read_complete_lines(dir.file("deny.log")).size() == 1; }, 5s));
  const Json denied = parse_json_lines(read_complete_lines(dir.file("deny.log"))).at(0);
  CHECK(denied["binary"] == copy);
  REQUIRE(wait_for([&] { return read_complete_lines(dir.file("access.log")).size() == 1; }, 5s));
  CHECK(egressd.err().find("settings from " + config) != std::string::npos);
  CHECK(egressd.err().find("from " + dir.file("etc") + "/policy.yaml (watched for changes)") !=
        std::string::npos);

  egressd.signal(SIGTERM);
  CHECK(egressd.wait(10s) == 0);
}

TEST_CASE("a flag overrides the config file, before or after --config" * doctest::timeout(90)) {
  struct Row {
    std::vector<std::string> args;  // CONFIG stands for the file
    const char* want_host;
  };
  const Row rows[] = {{{"--listen", "127.0.0.4:0", "--config", "CONFIG"}, "127.0.0.4:"},
                      {{"--config", "CONFIG", "--listen=127.0.0.5:0"}, "127.0.0.5:"},
                      {{"--config", "CONFIG"}, "127.0.0.3:"}};
  for (const Row& row : rows) {
    CAPTURE(row.want_host);
    const TempDir dir;
    const std::string config = write_config(dir, "127.0.0.3:0", policy_allowing(curl(), "127.0.0.1", 9));
    std::vector<std::string> args = row.args;
    for (std::string& arg : args) {
      if (arg == "CONFIG") arg = config;
    }
    Child egressd = start(dir, args);
    CHECK(ready_address(egressd, dir.file("ready")).starts_with(row.want_host));
    egressd.signal(SIGTERM);
    CHECK(egressd.wait(10s) == 0);
  }
}

TEST_CASE("a bad config file stops egressd with exit code 2 and FILE:LINE:COL" * doctest::timeout(60)) {
  const TempDir dir;
  const std::string config = dir.file("egressd.yaml");
  write_file(config, "listen: 127.0.0.1:0\npolcy: /etc/egressd/policy.yaml\ntimeouts:\n  idle_ms: soon\n");
  const RunResult result =
      run({egressd_binary(), "run", "--config", config, "--ready-file", dir.file("ready")});
  INFO(result.err);
  CHECK(result.exit_code == 2);
  CHECK(result.err.find("egressd run: " + config +
                        ":2:1: unknown key 'polcy'; accepted keys: listen, policy,") != std::string::npos);
  CHECK(result.err.find("egressd run: " + config +
                        ":4:12: timeouts.idle_ms needs a positive number, got 'soon'") != std::string::npos);
  CHECK_FALSE(file_exists(dir.file("ready")));
}

TEST_CASE("a config file that is missing stops egressd with exit code 2 naming it" * doctest::timeout(60)) {
  const TempDir dir;
  const RunResult result = run({egressd_binary(), "run", "--config", dir.file("absent.yaml")});
  CHECK(result.exit_code == 2);
  CHECK(result.err.find("egressd run: " + dir.file("absent.yaml") +
                        ": cannot read: No such file or directory") != std::string::npos);
}

TEST_CASE("egressd run with an unknown option says 'unknown option' and exits 2" * doctest::timeout(60)) {
  const RunResult result = run({egressd_binary(), "run", "--bogus"});
  CHECK(result.exit_code == 2);
  CHECK(result.err.starts_with("egressd run: unknown option '--bogus'\n"));
}

TEST_CASE("egressd run without arguments listens on 127.0.0.1:3128 with the embedded policy" *
          doctest::timeout(90)) {
  // In a network namespace of its own, so that the fixed port is free and nothing else is reached.
  const TempDir dir;
  Child egressd({"unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh",
                 egressd_binary(), "run"},
                ChildOptions{.env = {"STATE_DIRECTORY=" + dir.file("state")},
                             .working_dir = dir.path(),
                             .stdout_path = dir.file("egressd.stdout"),
                             .stderr_path = dir.file("egressd.stderr")});
  const bool listening = wait_for(
      [&] { return egressd.err().find("egressd listening on") != std::string::npos || !egressd.running(); },
      20s);
  INFO("egressd stderr:\n" << egressd.err());
  REQUIRE(listening);
  CHECK(egressd.err().find("egressd listening on 127.0.0.1:3128; policy hash=") != std::string::npos);
  CHECK(egressd.err().find("from <embedded policies/example.yaml>") != std::string::npos);
  // It answers: the example policy lists no endpoint on port 9.
  const RunResult denied = run({"nsenter", "--net=/proc/" + std::to_string(egressd.pid()) + "/ns/net", "--",
                                curl(), "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--proxy",
                                "http://127.0.0.1:3128", "http://127.0.0.1:9/"});
  CHECK(denied.out == "403");
  egressd.signal(SIGTERM);
  CHECK(egressd.wait(10s) == 0);
}

}  // namespace
}  // namespace egressd::test::e2e
