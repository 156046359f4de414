// How egressd reaches an origin: names mapped with --resolve, and IPv6 literals.
#include <doctest/doctest.h>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"

namespace egressd::test::e2e {
namespace {

TEST_CASE("--resolve maps a policy's host name to a loopback address" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "mirror.test", origin.port()),
                  {"--resolve", "mirror.test=127.0.0.1"});
  INFO(egressd.diagnostics());
  const std::string url = "http://mirror.test:" + std::to_string(origin.port()) + "/hello";
  const RunResult result = run({curl(), "-q", "-sS", "-p", "--proxy", egressd.url(), url});
  CHECK(result.exit_code == 0);
  CHECK(result.out == "hello\n");
  REQUIRE(origin.requests().size() == 1);
  CHECK(origin.requests()[0].header("Host") == "mirror.test:" + std::to_string(origin.port()));
  REQUIRE(egressd.wait_for_access_lines(1));
  CHECK(egressd.access_log_lines().at(0)["host"] == "mirror.test");
}

TEST_CASE("a CONNECT to an IPv6 literal reaches an origin on ::1" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http_v6();
  Egressd egressd(policy_allowing(curl(), "::1", origin.port()));
  INFO(egressd.diagnostics());
  const RunResult result =
      run({curl(), "-q", "-sS", "-p", "-g", "--proxy", egressd.url(), origin.url("/hello")});
  CHECK(result.exit_code == 0);
  CHECK(result.out == "hello\n");
  CHECK(origin.connections_accepted() == 1);
  REQUIRE(egressd.wait_for_access_lines(1));
  CHECK(egressd.access_log_lines().at(0)["host"] == "::1");
}

}  // namespace
}  // namespace egressd::test::e2e
