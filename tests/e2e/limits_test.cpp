// Request-handling limits: a head trickled byte by byte and a TLS handshake that never finishes are cut
// at their deadlines however slowly bytes keep coming; a long request-target gets 414; CL+TE and
// duplicate Content-Length get 400 before anything reaches the origin; past --max-connections (all
// clients) or --max-connections-per-binary (one executable) a connection gets a JSON 503.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/http_response.h"
#include "tests/support/local_origin.h"
#include "tests/support/local_tcp_echo.h"
#include "tests/support/raw_client.h"

namespace egressd::test::e2e {
namespace {

// Sends `bytes` one at a time, `gap` apart, until egressd closes; how long that took.
std::chrono::milliseconds trickle_until_closed(RawClient& client, std::string_view bytes,
                                               std::chrono::milliseconds gap) {
  const auto started = std::chrono::steady_clock::now();
  for (const char c : bytes) {
    if (!client.send(std::string_view(&c, 1)) || client.peer_closed()) break;
    client.read_at_least(client.received().size() + 1, gap);  // waits `gap`, noticing a close
    if (client.peer_closed()) break;
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
}

TEST_CASE("a request head trickled a byte at a time is cut at --head-timeout-ms" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()), {"--head-timeout-ms", "600"});
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  // 100 bytes at 50 ms: 5 s if nothing cut it, each byte well inside any per-read timeout.
  const std::string head = "GET " + origin.url("/hello") + " HTTP/1.1\r\nX-Slow: " + std::string(100, 'a');
  const auto took = trickle_until_closed(client, head, 50ms);
  CHECK(client.peer_closed());
  CHECK(took >= 500ms);
  CHECK(took < 2500ms);
  CHECK(origin.connections_accepted() == 0);
}

TEST_CASE("a TLS handshake trickled after the 200 is cut at --handshake-timeout-ms" * doctest::timeout(60)) {
  LocalTcpEcho echo;
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", echo.port()), {"--handshake-timeout-ms", "600"});
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send(connect_request(echo.host_port())));
  REQUIRE(client.read_until("\r\n\r\n").starts_with("HTTP/1.1 200"));
  client.take_received();
  // A TLS record header announcing a 512-byte ClientHello, then its body a byte at a time.
  std::string record = std::string("\x16\x03\x01\x02\x00", 5) + std::string(100, '\x01');
  const auto took = trickle_until_closed(client, record, 50ms);
  CHECK(client.peer_closed());
  CHECK(took >= 500ms);
  CHECK(took < 2500ms);
  CHECK(egressd.wait_for_stderr("did not complete its TLS handshake within 600 ms"));
}

HttpResponse send_raw(const Egressd& egressd, const std::string& request) {
  RawClient client("127.0.0.1", egressd.port());
  client.send(request);
  return HttpResponse::parse(client.read_until_close(10s));
}

TEST_CASE("a request-target over 8 KiB gets 414, CL+TE or two Content-Lengths 400, gzip before chunked 501" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const std::string host = "Host: " + origin.host_port() + "\r\n";
  const HttpResponse long_target = send_raw(
      egressd, "GET " + origin.url("/any/" + std::string(8 * 1024, 'a')) + " HTTP/1.1\r\n" + host + "\r\n");
  CHECK(long_target.status == 414);
  CHECK(Json::parse(long_target.body)["error"] == "uri_too_long");
  const HttpResponse cl_te = send_raw(egressd, "POST " + origin.url("/echo") + " HTTP/1.1\r\n" + host +
                                                   "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                   "0\r\n\r\n");
  CHECK(cl_te.status == 400);
  const HttpResponse two_lengths =
      send_raw(egressd, "POST " + origin.url("/echo") + " HTTP/1.1\r\n" + host +
                            "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello");
  CHECK(two_lengths.status == 400);
  const HttpResponse gzip_chunked =
      send_raw(egressd, "POST " + origin.url("/echo") + " HTTP/1.1\r\n" + host +
                            "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  CHECK(gzip_chunked.status == 501);  // forwarded as plain chunked, the origin would read gzip unannounced
  CHECK(origin.connections_accepted() == 0);
  // Just under the limit the request is read and decided (the test binary is unlisted: 403).
  CHECK(send_raw(egressd, "GET " + origin.url("/any/" + std::string(8 * 1024 - 100, 'a')) + " HTTP/1.1\r\n" +
                              host + "\r\n")
            .status == 403);
}

TEST_CASE("past --max-connections a new client gets 503 at once; a slot frees when a client leaves" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()),
                  {"--max-connections", "3", "--log-level", "debug"});
  INFO(egressd.diagnostics());
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<RawClient>("127.0.0.1", egressd.port()));
    REQUIRE(idle.back()->send("GET "));  // a head under way: the session is open
  }
  // The kernel queues connections in order and egressd accepts them in that order: curl's comes fourth.
  const RunResult over =
      run({curl(), "-q", "-sS", "--proxy", egressd.url(), "-w", "\n%{http_code}", origin.url("/hello")});
  CHECK(over.out.ends_with("\n503"));
  CHECK(Json::parse(over.out.substr(0, over.out.rfind('\n')))["error"] == "too_many_connections");
  CHECK(origin.connections_accepted() == 0);

  idle.pop_back();  // one client leaves (session 3): its slot comes back
  REQUIRE(egressd.wait_for_stderr("[S3] closing"));
  CHECK(run({curl(), "-q", "-sS", "--proxy", egressd.url(), origin.url("/hello")}).out == "hello\n");
}

TEST_CASE("past --max-connections-per-binary that binary gets 503 and a deny-log line; others go on" *
          doctest::timeout(60)) {
  LocalTcpEcho echo;
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(
      policy_allowing({PolicyRule{
          "both", {self_exe(), curl()}, {{"127.0.0.1", echo.port()}, {"127.0.0.1", origin.port()}}}}),
      {"--max-connections-per-binary", "2"});
  INFO(egressd.diagnostics());
  std::vector<std::unique_ptr<RawClient>> tunnels;
  for (int i = 0; i < 2; ++i) {
    tunnels.push_back(std::make_unique<RawClient>("127.0.0.1", egressd.port()));
    REQUIRE(tunnels.back()->send(connect_request(echo.host_port())));
    REQUIRE(tunnels.back()->read_until("\r\n\r\n").starts_with("HTTP/1.1 200"));
  }
  RawClient third("127.0.0.1", egressd.port());
  third.send(connect_request(echo.host_port()));
  const HttpResponse refused = HttpResponse::parse(third.read_until_close(10s));
  CHECK(refused.status == 503);
  const Json body = Json::parse(refused.body);
  CHECK(body["error"] == "too_many_connections");
  CHECK(body["detail"].str().find(self_exe()) != std::string::npos);
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(egressd.deny_log_lines().at(0)["event"] == "limit");
  CHECK(egressd.deny_log_lines().at(0)["binary"] == self_exe());
  // Another executable is counted on its own.
  CHECK(run({curl(), "-q", "-sS", "--proxy", egressd.url(), origin.url("/hello")}).out == "hello\n");
  CHECK(echo.connections_accepted() == 2);
}

}  // namespace
}  // namespace egressd::test::e2e
