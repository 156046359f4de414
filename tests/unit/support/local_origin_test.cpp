// LocalOrigin answering real curl directly, without any proxy: what e2e tests rely on it to do.
#include "tests/support/local_origin.h"

#include <doctest/doctest.h>

#include <chrono>

#include "tests/support/process.h"
#include "tests/support/raw_client.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace egressd::test {
namespace {

using namespace std::chrono_literals;

const std::string& curl() {
  static const std::string path = real_path_of("curl");
  return path;
}

TEST_CASE("LocalOrigin answers GET /hello and records the request" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  CHECK(origin.host_port() == "127.0.0.1:" + std::to_string(origin.port()));
  CHECK(origin.url("/hello") == "http://127.0.0.1:" + std::to_string(origin.port()) + "/hello");
  const RunResult result = run({curl(), "-q", "-sS", "-H", "X-Test: one", origin.url("/hello")});
  CHECK(result.exit_code == 0);
  CHECK(result.out == "hello\n");
  const std::vector<RecordedRequest> requests = origin.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "GET");
  CHECK(requests[0].target == "/hello");
  CHECK(requests[0].version == "HTTP/1.1");
  CHECK(requests[0].header("host") == origin.host_port());
  CHECK(requests[0].header("X-Test") == "one");
  CHECK(requests[0].headers.front().first == "Host");
  CHECK(requests[0].body_size == 0);
  CHECK(origin.connections_accepted() == 1);
}

TEST_CASE("LocalOrigin serves the configured /hello body" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http("custom body");
  CHECK(run({curl(), "-q", "-sS", origin.url("/hello")}).out == "custom body");
}

TEST_CASE("LocalOrigin keeps a connection alive across two requests from one curl" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const RunResult result = run({curl(), "-q", "-sS", origin.url("/hello"), origin.url("/bytes?n=5")});
  CHECK(result.out == "hello\n" + LocalOrigin::pattern(5));
  CHECK(origin.connections_accepted() == 1);
  const std::vector<RecordedRequest> requests = origin.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].connection == 1);
  CHECK(requests[1].connection == 1);
}

TEST_CASE("LocalOrigin closes the connection when the request says Connection: close" *
          doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const RunResult result =
      run({curl(), "-q", "-sS", "-H", "Connection: close", origin.url("/hello"), origin.url("/hello")});
  CHECK(result.out == "hello\nhello\n");
  CHECK(origin.connections_accepted() == 2);
}

TEST_CASE("LocalOrigin echoes a chunked upload of a megabyte" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string body = LocalOrigin::pattern(1'000'003);
  write_file(dir.file("body"), body);
  const RunResult result = run({curl(), "-q", "-sS", "-H", "Transfer-Encoding: chunked", "--data-binary",
                                "@" + dir.file("body"), origin.url("/echo")});
  CHECK(result.exit_code == 0);
  CHECK(result.out.size() == body.size());
  CHECK(LocalOrigin::checksum(result.out) == LocalOrigin::checksum(body));
  const std::vector<RecordedRequest> requests = origin.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "POST");
  CHECK(requests[0].header("Transfer-Encoding") == "chunked");
  CHECK_FALSE(requests[0].has_header("Content-Length"));
  CHECK(requests[0].body_size == body.size());
}

TEST_CASE("LocalOrigin echoes a Content-Length upload" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const RunResult result = run({curl(), "-q", "-sS", "--data-binary", "some bytes", origin.url("/echo")});
  CHECK(result.out == "some bytes");
  REQUIRE(origin.requests().size() == 1);
  CHECK(origin.requests()[0].header("Content-Length") == "10");
}

TEST_CASE("LocalOrigin serves /bytes and /slow with the deterministic pattern" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  CHECK(LocalOrigin::pattern(3) != std::string(3, LocalOrigin::pattern(1)[0]));
  CHECK(LocalOrigin::pattern(100'000).substr(0, 10) == LocalOrigin::pattern(10));
  const RunResult bytes = run({curl(), "-q", "-sS", origin.url("/bytes?n=70000")});
  CHECK((bytes.out == LocalOrigin::pattern(70'000)));
  const size_t n = 300'000;
  const RunResult slow = run({curl(), "-q", "-sS", "-D", "-", "-o", "/dev/null", "-w", "%{size_download}",
                              origin.url("/slow?n=" + std::to_string(n) + "&chunk=65536&delay_ms=1")});
  CHECK(slow.out.find("Transfer-Encoding: chunked") != std::string::npos);
  CHECK(slow.out.ends_with(std::to_string(n)));
  const RunResult body =
      run({curl(), "-q", "-sS", origin.url("/slow?n=" + std::to_string(n) + "&chunk=65536&delay_ms=1")});
  CHECK(body.out.size() == n);
  CHECK(LocalOrigin::checksum(body.out) == LocalOrigin::checksum(LocalOrigin::pattern(n)));
  CHECK(origin.slow_bytes_sent() == 2 * n);
}

TEST_CASE("LocalOrigin holds a /slow response at hold_at until release_holds()" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  Child download({curl(), "-q", "-sS", "-o", dir.file("out"),
                  origin.url("/slow?n=200000&chunk=50000&delay_ms=1&hold_at=100000")});
  REQUIRE(wait_for([&] { return origin.slow_bytes_sent() >= 100'000; }, 10s));
  CHECK(origin.slow_bytes_sent() == 100'000);
  CHECK(download.running());
  origin.release_holds();
  CHECK(download.wait(10s) == 0);
  CHECK(LocalOrigin::checksum(read_file(dir.file("out"))) ==
        LocalOrigin::checksum(LocalOrigin::pattern(200'000)));
}

TEST_CASE("LocalOrigin answers /redirect with 302 and Location, and unknown paths with 404" *
          doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const RunResult redirect =
      run({curl(), "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
           origin.url("/redirect?to=http://127.0.0.1:9/next%3Fx")});
  CHECK(redirect.out == "302 http://127.0.0.1:9/next?x");
  CHECK(run({curl(), "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}", origin.url("/nope")}).out ==
        "404");
  CHECK(
      run({curl(), "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", origin.url("/hello")})
          .out == "404");
}

TEST_CASE("LocalOrigin serves on ::1" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http_v6();
  CHECK(origin.host() == "::1");
  CHECK(origin.host_port() == "[::1]:" + std::to_string(origin.port()));
  CHECK(run({curl(), "-q", "-sS", "-g", origin.url("/hello")}).out == "hello\n");
}

TEST_CASE("LocalOrigin stops promptly with a client connected mid-request" * doctest::timeout(30)) {
  std::optional<LocalOrigin> origin = LocalOrigin::http();
  RawClient client("127.0.0.1", origin->port());
  REQUIRE(client.send("GET /hello HTTP/1.1\r\nHost: x\r\n"));  // head never finished
  REQUIRE(wait_for([&] { return origin->connections_accepted() == 1; }, 5s));
  origin.reset();  // must not hang
  client.read_until_close(5s);
  CHECK(client.peer_closed());
}

}  // namespace
}  // namespace egressd::test
