// A long download through a CONNECT tunnel while the policy reloads: it keeps flowing when the new
// policy still allows it, and is cut (with a "revoked" deny-log line) when it no longer does. The origin
// holds the response halfway until the test releases it, so the reload happens mid-transfer by design.
#include <doctest/doctest.h>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace egressd::test::e2e {
namespace {

constexpr size_t kTotal = 1 << 20;
constexpr size_t kHoldAt = kTotal / 2;
constexpr std::string_view kReloaded = "policy reloaded: hash=";

std::string slow_path() {
  return "/slow?n=" + std::to_string(kTotal) + "&chunk=65536&delay_ms=50&hold_at=" + std::to_string(kHoldAt);
}

// A rule that has nothing to do with the download.
PolicyRule unrelated_rule() {
  return {"unrelated", {real_path_of("sh")}, {{"example.test", 443}}};
}

TEST_CASE("a long download keeps flowing across a reload that still allows it" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  Child download(
      {curl(), "-q", "-sS", "-p", "--proxy", egressd.url(), "-o", dir.file("out"), origin.url(slow_path())});
  REQUIRE(wait_for([&] { return origin.slow_bytes_sent() >= kHoldAt; }, 20s));

  const size_t reloads = egressd.stderr_count(kReloaded);
  egressd.write_policy_by_rename(
      policy_allowing({{"test", {curl()}, {{"127.0.0.1", origin.port()}}}, unrelated_rule()}));
  REQUIRE(egressd.wait_for_stderr_count(kReloaded, reloads + 1, 10s));
  CHECK(download.running());  // still mid-transfer: the origin holds the second half
  origin.release_holds();

  CHECK(download.wait(30s) == 0);
  CAPTURE(download.err());
  const std::string body = read_file(dir.file("out"));
  CHECK(body.size() == kTotal);
  CHECK(LocalOrigin::checksum(body) == LocalOrigin::checksum(LocalOrigin::pattern(kTotal)));
  CHECK(egressd.deny_log_lines().empty());
}

TEST_CASE("a reload that no longer allows a running download cuts it and logs a revoked line" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  Child download(
      {curl(), "-q", "-sS", "-p", "--proxy", egressd.url(), "-o", dir.file("out"), origin.url(slow_path())});
  REQUIRE(wait_for([&] { return origin.slow_bytes_sent() >= kHoldAt; }, 20s));

  egressd.write_policy_by_rename(policy_allowing({unrelated_rule()}));
  REQUIRE(egressd.wait_for_deny_lines(1, 10s));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["event"] == "revoked");
  CHECK(line["binary"] == curl());
  CHECK(line["pid"] == download.pid());
  CHECK(line["method"] == "CONNECT");
  CHECK(line["host"] == "127.0.0.1");
  CHECK(line["port"] == origin.port());

  // Cut by egressd while the origin still holds the rest: curl ends without the whole body.
  const std::optional<int> exit_code = download.wait(10s);
  origin.release_holds();
  REQUIRE(exit_code.has_value());
  const std::string body = try_read_file(dir.file("out")).value_or("");
  CAPTURE(*exit_code);
  CAPTURE(body.size());
  CHECK((*exit_code != 0 || body.size() < kTotal));
  CHECK(body.size() < kTotal);
}

}  // namespace
}  // namespace egressd::test::e2e
