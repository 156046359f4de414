// Plain HTTP through egressd (absolute-form requests): forwarding, hop-by-hop headers, keep-alive,
// request bodies.
#include <doctest/doctest.h>
#include <unistd.h>

#include "tests/e2e/scenario.h"
#include "tests/support/http_response.h"
#include "tests/support/local_origin.h"
#include "tests/support/raw_client.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

TEST_CASE("a listed curl gets the origin's body through an absolute-form request" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const RunResult result = run({curl(), "-q", "-sS", "--proxy", egressd.url(), origin.url("/hello")});
  CHECK(result.exit_code == 0);
  CHECK(result.out == "hello\n");
  REQUIRE(origin.requests().size() == 1);
  const RecordedRequest request = origin.requests().at(0);
  INFO(request.head_text());
  CHECK(request.target == "/hello");  // egressd turned the absolute-form target into origin-form
  CHECK(request.header("Host") == origin.host_port());

  REQUIRE(egressd.wait_for_access_lines(1));
  const Json line = egressd.access_log_lines().at(0);
  CHECK(line["event"] == "allow");
  CHECK(line["method"] == "GET");
  CHECK(line["url"] == origin.url("/hello"));
  CHECK(line["binary"] == curl());
  CHECK(line["rule"] == "test");
}

TEST_CASE(
    "absolute-form forwarding drops Proxy-Authorization, Proxy-Connection and Connection-named headers" *
    doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const RunResult result = run({curl(), "-q", "-sS", "--proxy", egressd.url(), "-H",
                                "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=", "-H",
                                "Proxy-Connection: keep-alive", "-H", "Connection: X-Hop-Secret", "-H",
                                "X-Hop-Secret: 1", "-H", "X-End-To-End: kept", origin.url("/hello")});
  CHECK(result.out == "hello\n");
  REQUIRE(origin.requests().size() == 1);
  const RecordedRequest request = origin.requests().at(0);
  INFO(request.head_text());
  CAPTURE(request.headers.size());
  CHECK(request.header("Host") == origin.host_port());
  CHECK_FALSE(request.has_header("Proxy-Authorization"));
  CHECK_FALSE(request.has_header("Proxy-Connection"));
  CHECK_FALSE(request.has_header("X-Hop-Secret"));
  CHECK(request.header("X-End-To-End") == "kept");
  CHECK(request.header("Connection") != "X-Hop-Secret");
}

TEST_CASE(
    "two absolute-form requests in one curl call reuse one client connection and one origin connection" *
    doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const RunResult result = run({curl(), "-q", "-sS", "--proxy", egressd.url(), "-w", "[%{num_connects}]",
                                origin.url("/hello"), origin.url("/bytes?n=9")});
  CHECK(result.out == "hello\n[1]" + LocalOrigin::pattern(9) + "[0]");  // curl opened one connection
  CHECK(origin.connections_accepted() == 1);
  REQUIRE(origin.requests().size() == 2);

  REQUIRE(egressd.wait_for_access_lines(2));
  const std::vector<Json> lines = egressd.access_log_lines();
  CHECK(lines[0]["client"] == lines[1]["client"].str());  // one client connection: the same source port
  CHECK(lines[0]["url"] == origin.url("/hello"));
  CHECK(lines[1]["url"] == origin.url("/bytes?n=9"));
}

TEST_CASE("a chunked upload of about a megabyte arrives at the origin intact" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const TempDir dir;
  const std::string body = LocalOrigin::pattern(1'048'583);
  write_file(dir.file("upload"), body);
  // Expect: is turned off so that this case is only about the chunked body, not 100-continue.
  const RunResult result =
      run({curl(), "-q", "-sS", "--proxy", egressd.url(), "-H", "Transfer-Encoding: chunked", "-H",
           "Expect:", "--data-binary", "@" + dir.file("upload"), origin.url("/echo")});
  CHECK(result.exit_code == 0);
  CHECK(result.out.size() == body.size());
  CHECK(LocalOrigin::checksum(result.out) == LocalOrigin::checksum(body));
  REQUIRE(origin.requests().size() == 1);
  CHECK(origin.requests()[0].body_size == body.size());
}

}  // namespace
}  // namespace egressd::test::e2e

namespace egressd::test::e2e {

TEST_CASE(
    "each request on a keep-alive connection is decided on its own: the second, to another origin, gets 403" *
    doctest::timeout(60)) {
  LocalOrigin allowed = LocalOrigin::http();
  LocalOrigin other = LocalOrigin::http();
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", allowed.port()));
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send("GET " + allowed.url("/hello") + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string first = client.read_until("hello\n", 10s);
  CHECK(first.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK_FALSE(client.peer_closed());
  client.take_received();
  REQUIRE(client.send("GET " + other.url("/hello") + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  const HttpResponse second = HttpResponse::parse(client.read_until_close(10s));
  CHECK(second.status == 403);
  CHECK(Json::parse(second.body)["reason"] ==
        "endpoint 127.0.0.1:" + std::to_string(other.port()) + " is not allowed by any policy");
  CHECK(allowed.requests().size() == 1);
  CHECK(other.connections_accepted() == 0);
}

}  // namespace egressd::test::e2e
