// Starting and stopping: the ready file names the port it listens on, and SIGTERM or SIGINT ends
// egressd cleanly with exit code 0.
#include <doctest/doctest.h>
#include <signal.h>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

TEST_CASE("the ready file names the address egressd listens on" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  CHECK(read_file(egressd.dir().file("ready")) == egressd.host_port() + "\n");
  CHECK(egressd.port() != 0);
  CHECK(run({curl(), "-q", "-sS", "-p", "--proxy", egressd.url(), origin.url("/hello")}).out == "hello\n");
}

TEST_CASE("SIGTERM stops egressd with exit code 0" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  REQUIRE(http_status(curl(), egressd, origin.url("/hello")) == "200");
  CHECK(egressd.stop(SIGTERM) == 0);
}

TEST_CASE("SIGINT stops egressd with exit code 0" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  REQUIRE(http_status(curl(), egressd, origin.url("/hello")) == "200");
  CHECK(egressd.stop(SIGINT) == 0);
}

}  // namespace
}  // namespace egressd::test::e2e
