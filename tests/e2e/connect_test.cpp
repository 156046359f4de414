// CONNECT tunnels for listed binaries: bytes both ways, keep-alive inside the tunnel, half-close.
#include <doctest/doctest.h>

#include "tests/e2e/scenario.h"
#include "tests/support/http_response.h"
#include "tests/support/local_origin.h"
#include "tests/support/local_tcp_echo.h"
#include "tests/support/raw_client.h"

namespace egressd::test::e2e {
namespace {

TEST_CASE("a listed curl tunnels to the origin with CONNECT and the access log names its rule" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const RunResult result = run({curl(), "-q", "-sS", "-p", "--proxy", egressd.url(), origin.url("/hello")});
  CHECK(result.exit_code == 0);
  CHECK(result.out == "hello\n");
  REQUIRE(origin.requests().size() == 1);
  CHECK(origin.requests()[0].target ==
        "/hello");  // origin-form inside the tunnel: egressd did not rewrite it

  REQUIRE(egressd.wait_for_access_lines(1));
  const Json line = egressd.access_log_lines().at(0);
  CHECK(line["event"] == "allow");
  CHECK(line["rule"] == "test");
  CHECK(line["binary"] == curl());
  CHECK(line["pid"] == result.pid);
  CHECK(line["uid"] == ::getuid());
  CHECK(line["method"] == "CONNECT");
  CHECK(line["host"] == "127.0.0.1");
  CHECK(line["port"] == origin.port());
  CHECK(line["client"].str().starts_with("127.0.0.1:"));
  CHECK(line["session"].is_number());
  CHECK(line["policy_hash"].str().size() == 16);
  CHECK(line["time"].str().ends_with("Z"));
  CHECK(egressd.deny_log_lines().empty());
}

TEST_CASE("two URLs in one curl call share one CONNECT tunnel and one origin connection" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const RunResult result = run(
      {curl(), "-q", "-sS", "-p", "--proxy", egressd.url(), origin.url("/hello"), origin.url("/bytes?n=7")});
  CHECK(result.out == "hello\n" + LocalOrigin::pattern(7));
  CHECK(origin.connections_accepted() == 1);
  CHECK(origin.requests().size() == 2);
  REQUIRE(egressd.wait_for_access_lines(1));
  CHECK(egressd.access_log_lines().size() == 1);  // one tunnel, one decision
}

TEST_CASE("a CONNECT tunnel carries arbitrary bytes and passes a half-close through both ways" *
          doctest::timeout(60)) {
  LocalTcpEcho echo;
  // This test binary is the client here, so the policy lists it.
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", echo.port()));
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send("CONNECT " + echo.host_port() + " HTTP/1.1\r\nHost: " + echo.host_port() + "\r\n\r\n"));
  const std::string head = client.read_until("\r\n\r\n", 10s);
  REQUIRE(head.find("\r\n\r\n") != std::string::npos);
  const HttpResponse response = HttpResponse::parse(head.substr(0, head.find("\r\n\r\n") + 4));
  REQUIRE(response.status == 200);
  client.take_received();

  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  REQUIRE(client.send(bytes));
  CHECK(client.read_at_least(bytes.size(), 10s) == bytes);
  client.shutdown_write();  // the echo server answers our EOF with "bye" and closes its side
  CHECK(client.read_until_close(10s) == bytes + LocalTcpEcho::kGoodbye);
  CHECK_FALSE(client.timed_out());
}

}  // namespace
}  // namespace egressd::test::e2e
