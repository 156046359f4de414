// A broken policy written over a good one: egressd says where it is broken (file:line:col) and keeps
// deciding with the policy it had.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

struct Rejection {
  std::string kept_hash;
  std::string file;
  int line = 0;
  int col = 0;
  std::string message;
};

// The first "policy rejected (N since start), keeping hash=H: FILE:LINE:COL: message" console line, if any.
std::optional<Rejection> find_rejection(const std::string& console) {
  static constexpr std::string_view kPrefix = "), keeping hash=";
  const size_t rejected = console.find("policy rejected (");
  if (rejected == std::string::npos) return std::nullopt;
  const size_t start = console.find(kPrefix, rejected);
  if (start == std::string::npos) return std::nullopt;
  const size_t end = console.find('\n', start);
  const std::string line =
      console.substr(start + kPrefix.size(), end == std::string::npos ? end : end - start - kPrefix.size());
  // H: FILE:LINE:COL: message -- FILE may hold ':' itself, so find ":LINE:COL: " from the left.
  Rejection rejection;
  rejection.kept_hash = line.substr(0, line.find(':'));
  const size_t file_start = rejection.kept_hash.size() + 2;
  for (size_t colon = line.find(':', file_start); colon != std::string::npos;
       colon = line.find(':', colon + 1)) {
    size_t at = colon + 1;
    auto number = [&](int& out) {
      const size_t from = at;
      while (at < line.size() && std::isdigit(static_cast<unsigned char>(line[at])) != 0) ++at;
      if (at == from || at >= line.size() || line[at] != ':') return false;
      out = std::stoi(line.substr(from, at - from));
      ++at;
      return true;
    };
    if (number(rejection.line) && number(rejection.col) && line.compare(at, 1, " ") == 0) {
      rejection.file = line.substr(file_start, colon - file_start);
      rejection.message = line.substr(at + 1);
      return rejection;
    }
  }
  return std::nullopt;
}

int line_count(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// Starts egressd with a policy listing curl, writes `broken`, and checks that the rejection names the
// policy file and that curl stays allowed while its copy stays denied. Returns the rejection.
Rejection check_rejected_and_unchanged(const std::string& broken) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string copy = copy_executable(curl(), dir, "curl");
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  REQUIRE(http_status(curl(), egressd, origin.url("/hello")) == "200");
  REQUIRE(egressd.wait_for_access_lines(1));
  const std::string hash = egressd.access_log_lines().at(0)["policy_hash"].str();

  egressd.write_policy_by_rename(broken);
  REQUIRE(egressd.wait_for_stderr("policy rejected", 10s));
  const std::optional<Rejection> rejection = find_rejection(egressd.stderr_text());
  REQUIRE(rejection.has_value());
  CHECK(rejection->kept_hash == hash);
  CHECK(rejection->file == egressd.policy_path());
  CHECK(rejection->line >= 1);
  CHECK(rejection->col >= 1);

  CHECK(http_status(curl(), egressd, origin.url("/hello")) == "200");
  CHECK(http_status(copy, egressd, origin.url("/hello")) == "403");
  REQUIRE(egressd.wait_for_access_lines(2));
  CHECK(egressd.access_log_lines().at(1)["policy_hash"] == hash);
  CHECK(egressd.stderr_count("policy reloaded") == 0);
  return *rejection;
}

TEST_CASE("garbage YAML is rejected with file:line:col and the previous policy stays in force" *
          doctest::timeout(60)) {
  const std::string garbage = "version: 1\nnetwork_policies:\n  test: [unclosed, {\n    : : :\n";
  const Rejection rejection = check_rejected_and_unchanged(garbage);
  CHECK(rejection.line <= line_count(garbage) + 1);
}

TEST_CASE("a policy with an unknown key is rejected at that key and the previous policy stays in force" *
          doctest::timeout(60)) {
  // The key goes under the rule, after everything policy_allowing() writes: its line is the next one.
  const std::string valid = policy_allowing("/usr/bin/curl", "127.0.0.1", 1);
  const Rejection rejection = check_rejected_and_unchanged(valid + "    surprise_key: true\n");
  CHECK(rejection.line == line_count(valid) + 1);
  CHECK(rejection.col == 5);
  CHECK(rejection.message.find("surprise_key") != std::string::npos);
}

}  // namespace
}  // namespace egressd::test::e2e
