#include "tests/support/local_tcp_echo.h"

#include <doctest/doctest.h>

#include <chrono>

#include "tests/support/raw_client.h"

namespace egressd::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("LocalTcpEcho echoes bytes, and after the client's half-close says bye and closes" *
          doctest::timeout(30)) {
  LocalTcpEcho echo;
  CHECK(echo.host_port() == "127.0.0.1:" + std::to_string(echo.port()));
  RawClient client("127.0.0.1", echo.port());
  std::string binary("\0\x01\xff\r\n", 5);
  REQUIRE(client.send(binary));
  CHECK(client.read_at_least(5, 5s) == binary);
  REQUIRE(client.send("more"));
  client.shutdown_write();
  CHECK(client.read_until_close(5s) == binary + "more" + LocalTcpEcho::kGoodbye);
  CHECK_FALSE(client.timed_out());
  CHECK(echo.connections_accepted() == 1);
}

TEST_CASE("LocalTcpEcho serves on ::1" * doctest::timeout(30)) {
  LocalTcpEcho echo("::1");
  CHECK(echo.host_port() == "[::1]:" + std::to_string(echo.port()));
  RawClient client("::1", echo.port());
  REQUIRE(client.send("ping"));
  client.shutdown_write();
  CHECK(client.read_until_close(5s) == std::string("ping") + LocalTcpEcho::kGoodbye);
}

TEST_CASE("RawClient reports a peer that never closes as a timeout" * doctest::timeout(30)) {
  LocalTcpEcho echo;
  RawClient client("127.0.0.1", echo.port());
  REQUIRE(client.send("x"));
  CHECK(client.read_until_close(100ms) == "x");
  CHECK(client.timed_out());
  CHECK_FALSE(client.peer_closed());
  CHECK(client.local_port() != 0);
}

}  // namespace
}  // namespace egressd::test
