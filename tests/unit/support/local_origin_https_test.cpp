// LocalOrigin over HTTPS with TestCa certificates, answering real curl (and python3) directly: the
// origins egressd re-encrypts to in the e2e tests.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>

#include "tests/support/local_origin.h"
#include "tests/support/process.h"
#include "tests/support/raw_client.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_ca.h"
#include "tests/support/wait.h"

namespace egressd::test {
namespace {

using namespace std::chrono_literals;

const std::string& curl() {
  static const std::string path = real_path_of("curl");
  return path;
}

// "NAME:PORT:127.0.0.1", curl's --resolve for `origin` under `name`.
std::string resolve(const LocalOrigin& origin, const std::string& name) {
  return name + ":" + std::to_string(origin.port()) + ":127.0.0.1";
}

TEST_CASE("an HTTPS LocalOrigin serves /hello by name to curl trusting the test CA, and records the SNI" *
          doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  LocalOrigin origin = LocalOrigin::https(ca.issue({"mirror.example.com", "127.0.0.1"}));
  CHECK(origin.is_https());
  CHECK(origin.url("/hello") == "https://127.0.0.1:" + std::to_string(origin.port()) + "/hello");
  CHECK(origin.url_as("mirror.example.com", "/hello") ==
        "https://mirror.example.com:" + std::to_string(origin.port()) + "/hello");
  const RunResult result =
      run({curl(), "-q", "-sS", "--cacert", ca.ca_path(), "--resolve", resolve(origin, "mirror.example.com"),
           origin.url_as("mirror.example.com", "/hello")});
  CHECK(result.err == "");
  CHECK(result.exit_code == 0);
  CHECK(result.out == "hello\n");
  const std::vector<RecordedRequest> requests = origin.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].sni == "mirror.example.com");
  CHECK(requests[0].target == "/hello");
  CHECK(requests[0].header("Host") == "mirror.example.com:" + std::to_string(origin.port()));
}

TEST_CASE("an HTTPS LocalOrigin answers any name its certificate lists, and an IP literal without SNI" *
          doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  LocalOrigin origin =
      LocalOrigin::https(ca.issue({"a.example.com", "b.example.net", "127.0.0.1"}), "many\n");
  for (const std::string name : {"a.example.com", "b.example.net"}) {
    CAPTURE(name);
    CHECK(run({curl(), "-q", "-sS", "--cacert", ca.ca_path(), "--resolve", resolve(origin, name),
               origin.url_as(name, "/hello")})
              .out == "many\n");
  }
  CHECK(run({curl(), "-q", "-sS", "--cacert", ca.ca_path(), origin.url("/hello")}).out == "many\n");
  const std::vector<RecordedRequest> requests = origin.requests();
  REQUIRE(requests.size() == 3);
  CHECK(requests[0].sni == "a.example.com");
  CHECK(requests[1].sni == "b.example.net");
  CHECK(requests[2].sni == "");  // clients send no SNI for an IP literal
}

TEST_CASE("curl trusting the test CA rejects an HTTPS LocalOrigin with a self-signed certificate" *
          doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  LocalOrigin origin = LocalOrigin::https(TestCa::self_signed_server({"mirror.example.com"}));
  const RunResult result =
      run({curl(), "-q", "-sS", "--cacert", ca.ca_path(), "--resolve", resolve(origin, "mirror.example.com"),
           origin.url_as("mirror.example.com", "/hello")});
  CHECK(result.exit_code == 60);  // CURLE_PEER_FAILED_VERIFICATION
  CHECK(result.out == "");
  CHECK(origin.requests().empty());
  CHECK(origin.connections_accepted() == 1);
}

TEST_CASE("curl rejects an HTTPS LocalOrigin reached by a name its certificate does not list" *
          doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  LocalOrigin origin = LocalOrigin::https(ca.issue({"mirror.example.com"}));
  const RunResult result =
      run({curl(), "-q", "-sS", "--cacert", ca.ca_path(), "--resolve", resolve(origin, "other.example.com"),
           origin.url_as("other.example.com", "/hello")});
  CHECK(result.exit_code == 60);
  CHECK(origin.requests().empty());
}

TEST_CASE("an HTTPS LocalOrigin speaks HTTP/1.1 over TLS 1.2 and 1.3 and keeps the connection alive" *
          doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  LocalOrigin origin = LocalOrigin::https(ca.issue({"mirror.example.com"}));
  // curl offers h2 too unless told --http1.1; the origin picks http/1.1 either way.
  const std::vector<std::string> variants[] = {{"--tlsv1.3", "--http2"}, {"--tls-max", "1.2", "--http1.1"}};
  for (const std::vector<std::string>& options : variants) {
    CAPTURE(options.front());
    std::vector<std::string> argv = {
        curl(), "-q", "-sS", "--cacert", ca.ca_path(), "--resolve", resolve(origin, "mirror.example.com")};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.insert(argv.end(), {"-w", "[%{http_version}]", origin.url_as("mirror.example.com", "/hello"),
                             origin.url_as("mirror.example.com", "/bytes?n=5")});
    const RunResult result = run(argv);
    CHECK(result.err == "");
    CHECK(result.out == "hello\n[1.1]" + LocalOrigin::pattern(5) + "[1.1]");
  }
  CHECK(origin.connections_accepted() == 2);
}

TEST_CASE("an HTTPS LocalOrigin echoes a megabyte upload and serves a megabyte download" *
          doctest::timeout(60)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  LocalOrigin origin = LocalOrigin::https(ca.issue({"127.0.0.1"}));
  const std::string body = LocalOrigin::pattern(1'000'003);
  write_file(dir.file("body"), body);
  const RunResult echo =
      run({curl(), "-q", "-sS", "--cacert", ca.ca_path(), "-H", "Transfer-Encoding: chunked", "--data-binary",
           "@" + dir.file("body"), origin.url("/echo")});
  CHECK(echo.exit_code == 0);
  CHECK(LocalOrigin::checksum(echo.out) == LocalOrigin::checksum(body));
  const RunResult bytes =
      run({curl(), "-q", "-sS", "--cacert", ca.ca_path(), origin.url("/bytes?n=1048576")});
  CHECK(LocalOrigin::checksum(bytes.out) == LocalOrigin::checksum(LocalOrigin::pattern(1'048'576)));
}

TEST_CASE("an HTTPS LocalOrigin echoes after 101 on /upgrade until the client closes" *
          doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  LocalOrigin origin = LocalOrigin::https(ca.issue({"mirror.example.com"}));
  // python3's ssl module as the client: a raw byte stream after the 101, which curl does not offer.
  const char* script = R"(
import socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as raw:
    with context.wrap_socket(raw, server_hostname="mirror.example.com") as tls:
        tls.sendall(b"GET /upgrade HTTP/1.1\r\nHost: mirror.example.com\r\n"
                    b"Connection: Upgrade\r\nUpgrade: test-echo\r\n\r\nearly ")
        received = b""
        while not received.endswith(b"early "):
            received += tls.recv(65536)
        tls.sendall(b"ping")
        while not received.endswith(b"ping"):
            received += tls.recv(65536)
        tls.unwrap()  # close_notify: the origin's EOF
        sys.stdout.write(received.decode())
)";
  const RunResult result = run({"python3", "-c", script, ca.ca_path(), std::to_string(origin.port())});
  CHECK(result.err == "");
  CHECK(result.out ==
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\n\r\nearly ping");
  REQUIRE(origin.requests().size() == 1);
  CHECK(origin.requests()[0].sni == "mirror.example.com");
}

TEST_CASE("an HTTPS LocalOrigin stops promptly with a client stuck in the handshake" * doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  std::optional<LocalOrigin> origin = LocalOrigin::https(ca.issue({"127.0.0.1"}));
  RawClient client("127.0.0.1", origin->port());
  REQUIRE(client.send(std::string("\x16\x03\x01\x02\x00", 5)));  // a ClientHello record header, no body
  REQUIRE(wait_for([&] { return origin->connections_accepted() == 1; }, 5s));
  origin.reset();  // must not hang
  client.read_until_close(5s);
  CHECK(client.peer_closed());
}

}  // namespace
}  // namespace egressd::test
