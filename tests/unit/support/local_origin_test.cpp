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

TEST_CASE("LocalOrigin answers /redirect with the status it is asked for" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string to = "http://127.0.0.1:9/next";
  struct Row {
    std::string status;
    const char* want_code;
    bool redirects;
  };
  const Row rows[] = {{"301", "301", true}, {"302", "302", true},  {"303", "303", true}, {"307", "307", true},
                      {"308", "308", true}, {"200", "400", false}, {"404", "400", false}};
  for (const Row& row : rows) {
    CAPTURE(row.status);
    const RunResult result =
        run({curl(), "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             origin.url("/redirect?status=" + row.status + "&to=" + to)});
    CHECK(result.out == std::string(row.want_code) + " " + (row.redirects ? to : ""));
  }
}

// The body of a chunked response split into its chunks; nothing if `response` is not complete chunking.
std::optional<std::vector<std::string>> chunks_of(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  if (at == std::string::npos) return std::nullopt;
  at += 4;
  std::vector<std::string> chunks;
  while (true) {
    const size_t line_end = response.find("\r\n", at);
    if (line_end == std::string::npos) return std::nullopt;
    const size_t size = std::stoul(response.substr(at, line_end - at), nullptr, 16);
    at = line_end + 2;
    if (size == 0)
      return response.compare(at, std::string::npos, "\r\n") == 0 ? std::optional(chunks) : std::nullopt;
    if (response.size() < at + size + 2) return std::nullopt;
    chunks.push_back(response.substr(at, size));
    at += size + 2;
  }
}

TEST_CASE("LocalOrigin streams /events as one chunk per event, interval_ms apart" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  RawClient client("127.0.0.1", origin.port());
  REQUIRE(client.send("GET /events?n=4&interval_ms=150 HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string response = client.read_until("\r\n0\r\n\r\n", 10s);
  INFO(response);
  CHECK(response.starts_with("HTTP/1.1 200 OK\r\n"));
  const std::string head = response.substr(0, response.find("\r\n\r\n") + 2);
  CHECK(head.find("\r\nContent-Type: text/event-stream\r\n") != std::string::npos);
  CHECK(head.find("\r\nCache-Control: no-cache\r\n") != std::string::npos);
  CHECK(head.find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos);
  const std::optional<std::vector<std::string>> events = chunks_of(response);
  REQUIRE(events);
  REQUIRE(events->size() == 4);
  long long previous_ms = 0;
  for (size_t i = 0; i < events->size(); ++i) {
    const std::string& event = (*events)[i];
    CAPTURE(event);
    const std::string prefix = "data: " + std::to_string(i + 1) + " ";
    REQUIRE(event.starts_with(prefix));
    REQUIRE(event.ends_with("\n\n"));
    const long long sent_ms = std::stoll(event.substr(prefix.size()));
    if (i > 0) {
      CHECK(sent_ms - previous_ms >= 140);  // the pause, give or take the clock's granularity
      CHECK(sent_ms - previous_ms < 5000);
    }
    previous_ms = sent_ms;
  }
  CHECK_FALSE(client.peer_closed());  // keep-alive
}

TEST_CASE("LocalOrigin delivers each /events event as it is sent, not at the end" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  Child events(
      {curl(), "-q", "-sS", "-N", "-o", dir.file("out"), origin.url("/events?n=2&interval_ms=20000")});
  REQUIRE(wait_for([&] { return try_read_file(dir.file("out")).value_or("").starts_with("data: 1 "); }, 10s));
  CHECK(events.running());  // the second event is 20 s away
  CHECK(read_file(dir.file("out")).find("data: 2 ") == std::string::npos);
}

TEST_CASE("LocalOrigin switches protocols on /upgrade and echoes every byte until EOF" *
          doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  RawClient client("127.0.0.1", origin.port());
  REQUIRE(
      client.send("GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
                  "Upgrade: websocket\r\n\r\nsent early "));
  const std::string first = client.read_until("\r\n\r\n", 10s);
  REQUIRE(first.find("\r\n\r\n") != std::string::npos);
  const size_t head_size = first.find("\r\n\r\n") + 4;
  const std::string head = first.substr(0, head_size);
  CHECK(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
  CHECK(head.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
  CHECK(head.find("\r\nConnection: Upgrade\r\n") != std::string::npos);
  const std::string want = "sent early " + LocalOrigin::pattern(200'000);
  REQUIRE(client.send(want.substr(11)));
  const std::string echoed = client.read_at_least(head_size + want.size(), 10s).substr(head_size);
  CHECK(echoed.size() == want.size());
  CHECK(LocalOrigin::checksum(echoed) == LocalOrigin::checksum(want));
  client.shutdown_write();
  CHECK(client.read_until_close(10s).size() == head_size + want.size());  // nothing more, then the close
  CHECK(client.peer_closed());
  REQUIRE(origin.requests().size() == 1);
  CHECK(origin.requests()[0].header("Upgrade") == "websocket");
}

TEST_CASE("LocalOrigin refuses /upgrade without Connection: Upgrade and an Upgrade header" *
          doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string missing[] = {"", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n"};
  for (const std::string& headers : missing) {
    CAPTURE(headers);
    RawClient client("127.0.0.1", origin.port());
    REQUIRE(client.send("GET /upgrade HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n"));
    CHECK(client.read_until("\r\n", 10s).starts_with("HTTP/1.1 400 Bad Request\r\n"));
  }
}

TEST_CASE("LocalOrigin answers any method under /any/ with the method and target it received" *
          doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  struct Row {
    std::string method;
    std::string target;
  };
  const Row rows[] = {{"GET", "/any/repos/x/y?per_page=1&q=a%20b"},
                      {"POST", "/any/upload"},
                      {"PUT", "/any"},
                      {"DELETE", "/any/a/b/"},
                      {"PATCH", "/any/x?y"},
                      {"OPTIONS", "/any/x"}};
  for (const Row& row : rows) {
    CAPTURE(row.method);
    CAPTURE(row.target);
    const RunResult result =
        run({curl(), "-q", "-sS", "-X", row.method, "--data-binary", "ignored", origin.url(row.target)});
    CHECK(result.out == row.method + " " + row.target + "\n");
    CHECK(origin.requests().back().method == row.method);
  }
  CHECK(run({curl(), "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}", origin.url("/anything")}).out ==
        "404");
}

TEST_CASE("LocalOrigin answers HEAD with the head a GET gets and no body" * doctest::timeout(30)) {
  LocalOrigin origin = LocalOrigin::http();
  const RunResult result =
      run({curl(), "-q", "-sS", "-I", origin.url("/hello"), origin.url("/any/x"), origin.url("/nope")});
  CHECK(result.exit_code == 0);
  INFO(result.out);
  CHECK(result.out.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"));
  CHECK(result.out.find("Content-Length: 12\r\n") != std::string::npos);  // "HEAD /any/x\n"
  CHECK(result.out.find("HTTP/1.1 404 Not Found\r\n") != std::string::npos);
  CHECK(origin.connections_accepted() == 1);  // no stray body broke the keep-alive
  CHECK(origin.requests().size() == 3);
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
