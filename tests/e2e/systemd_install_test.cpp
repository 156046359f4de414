// `cmake --install` into a temporary DESTDIR: the binary, the man page, the unit (ExecStart naming the
// installed binary, wherever the prefix chosen at install time puts it), /etc/egressd/egressd.yaml and
// policy.yaml, and never an overwritten config. The installed unit passes systemd-analyze verify against the
// installed binary.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <string>

#include "tests/e2e/scenario.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

RunResult install(const TempDir& destdir, const std::string& prefix) {
  return run({"cmake", "--install", EGRESSD_BUILD_DIR, "--prefix", prefix},
             RunOptions{.env = {"DESTDIR=" + destdir.path()}, .timeout = 120s});
}

std::string source_file(const std::string& path) {
  return read_file(std::string(EGRESSD_SOURCE_DIR) + "/" + path);
}

bool executable(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(path);
}

TEST_CASE("cmake --install lays out the binary, the man page, the unit, egressd.yaml and the example policy" *
          doctest::timeout(180)) {
  const TempDir root;
  const RunResult installed = install(root, "/usr/local");
  INFO(installed.out, installed.err);
  REQUIRE(installed.exit_code == 0);

  const std::string binary = root.path() + "/usr/local/bin/egressd";
  CHECK(executable(binary));
  const std::string unit_path = root.path() + "/usr/local/lib/systemd/system/egressd.service";
  const std::string unit = read_file(unit_path);
  CHECK(unit.find("\nExecStart=/usr/local/bin/egressd run --config /etc/egressd/egressd.yaml\n") !=
        std::string::npos);
  CHECK(read_file(root.path() + "/etc/egressd/egressd.yaml") == source_file("systemd/egressd.yaml"));
  CHECK(read_file(root.path() + "/etc/egressd/policy.yaml") == source_file("policies/example.yaml"));
  CHECK(read_file(root.path() + "/usr/local/share/man/man1/egressd.1") == source_file("docs/egressd.1"));

  // The installed binary runs and accepts the installed policy.
  const RunResult check = run({binary, "check", root.path() + "/etc/egressd/policy.yaml"});
  INFO(check.out, check.err);
  CHECK(check.exit_code == 0);

  // The installed unit, with ExecStart pointing into DESTDIR (where the binary is staged), verifies.
  const TempDir dir;
  const std::string staged = dir.file("egressd.service");
  write_file(staged,
             std::regex_replace(unit, std::regex("ExecStart=/usr/local/bin/egressd"), "ExecStart=" + binary));
  const RunResult verify = run({"systemd-analyze", "verify", staged});
  INFO(verify.out, verify.err);
  CHECK(verify.exit_code == 0);
  CHECK(verify.err.find(staged) == std::string::npos);  // no complaint names the unit
}

TEST_CASE("cmake --install keeps an egressd.yaml and a policy.yaml already in /etc/egressd" *
          doctest::timeout(180)) {
  const TempDir root;
  std::filesystem::create_directories(root.path() + "/etc/egressd");
  write_file(root.path() + "/etc/egressd/egressd.yaml", "listen: 127.0.0.1:8000\n");
  write_file(root.path() + "/etc/egressd/policy.yaml", "version: 1\nnetwork_policies: {}\n");
  const RunResult installed = install(root, "/usr/local");
  INFO(installed.out, installed.err);
  REQUIRE(installed.exit_code == 0);
  CHECK(read_file(root.path() + "/etc/egressd/egressd.yaml") == "listen: 127.0.0.1:8000\n");
  CHECK(read_file(root.path() + "/etc/egressd/policy.yaml") == "version: 1\nnetwork_policies: {}\n");
  CHECK(installed.out.find("Keeping: " + root.path() + "/etc/egressd/egressd.yaml") != std::string::npos);
  CHECK(file_exists(root.path() + "/usr/local/lib/systemd/system/egressd.service"));
}

TEST_CASE("the installed unit's ExecStart follows the prefix chosen at install time" *
          doctest::timeout(180)) {
  const TempDir root;
  const RunResult installed = install(root, "/opt/egressd");
  INFO(installed.out, installed.err);
  REQUIRE(installed.exit_code == 0);
  CHECK(executable(root.path() + "/opt/egressd/bin/egressd"));
  const std::string unit = read_file(root.path() + "/opt/egressd/lib/systemd/system/egressd.service");
  CHECK(unit.find("\nExecStart=/opt/egressd/bin/egressd run --config /etc/egressd/egressd.yaml\n") !=
        std::string::npos);
  CHECK(unit.find("/usr/local/bin/egressd") == std::string::npos);
  CHECK(file_exists(root.path() + "/etc/egressd/egressd.yaml"));
}

}  // namespace
}  // namespace egressd::test::e2e
