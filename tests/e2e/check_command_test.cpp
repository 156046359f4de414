// `egressd check FILE`: exit 0 for a valid policy, 1 with FILE:LINE:COL: lines for a broken one.
#include <doctest/doctest.h>

#include <cctype>
#include <sstream>

#include "tests/e2e/scenario.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

// Whether some line of `text` is "PREFIX<digits>: <message>".
bool has_located_line(const std::string& text, const std::string& prefix) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(prefix)) continue;
    size_t at = prefix.size();
    const size_t digits_start = at;
    while (at < line.size() && std::isdigit(static_cast<unsigned char>(line[at])) != 0) ++at;
    if (at > digits_start && line.compare(at, 2, ": ") == 0 && line.size() > at + 2) return true;
  }
  return false;
}

TEST_CASE("egressd check accepts a valid policy with exit code 0" * doctest::timeout(60)) {
  const TempDir dir;
  const std::string path = dir.file("policy.yaml");
  write_file(path, policy_allowing(curl(), "api.example.com", 443));
  const RunResult result = run({egressd_binary(), "check", path});
  INFO(result.out << result.err);
  CHECK(result.exit_code == 0);
}

TEST_CASE("egressd check rejects a bare *.com host with exit code 1 and a FILE:LINE:COL: line" *
          doctest::timeout(60)) {
  const TempDir dir;
  const std::string path = dir.file("policy.yaml");
  const std::string yaml =
      "version: 1\n"
      "network_policies:\n"
      "  test:\n"
      "    endpoints:\n"
      "      - host: \"*.com\"\n"
      "        port: 443\n"
      "    binaries:\n"
      "      - path: /usr/bin/curl\n";
  write_file(path, yaml);
  const RunResult result = run({egressd_binary(), "check", path});
  INFO(result.out << result.err);
  CHECK(result.exit_code == 1);
  CHECK(has_located_line(result.out + result.err, path + ":5:"));
}

}  // namespace
}  // namespace egressd::test::e2e
