// TLS termination: clients that trust egressd's CA talk HTTPS through it; egressd re-encrypts to the
// origin and verifies it; SNI and Host must name the CONNECT host; tls: skip and non-TLS streams pass
// opaque; server-sent events arrive as they are sent.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/test_ca.h"

namespace egressd::test::e2e {
namespace {

constexpr const char* kMirror = "mirror.example.com";

// An HTTPS origin with a certificate from a test CA, reached as mirror.example.com (egressd resolves
// it to 127.0.0.1). egressd trusts the test CA with --upstream-ca unless a test says otherwise.
struct HttpsOrigin {
  explicit HttpsOrigin(std::vector<std::string> cert_names = {kMirror})
      : ca(TestCa::create(dir.path())), origin(LocalOrigin::https(ca.issue(std::move(cert_names)))) {}
  explicit HttpsOrigin(const ServerCert& cert)
      : ca(TestCa::create(dir.path())), origin(LocalOrigin::https(cert)) {}

  std::vector<std::string> egressd_args(bool trust_origin_ca = true) const {
    std::vector<std::string> args{"--resolve", std::string(kMirror) + "=127.0.0.1"};
    if (trust_origin_ca) args.insert(args.end(), {"--upstream-ca", ca.ca_path()});
    return args;
  }
  std::string url(std::string_view path) const { return origin.url_as(kMirror, path); }

  TempDir dir;
  TestCa ca;
  LocalOrigin origin;
};

struct Fetched {
  std::string status;  // "200", "403", "000" when there was no HTTP answer
  std::string body;
  RunResult run;
};

// curl through egressd, trusting egressd's CA; `extra` goes before the URL.
Fetched fetch(const Egressd& egressd, const std::string& url, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{
      curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", egressd.ca_path(), "-w", "\n%{http_code}"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  Fetched fetched;
  fetched.run = run(argv);
  const auto newline = fetched.run.out.rfind('\n');
  fetched.status = newline == std::string::npos ? fetched.run.out : fetched.run.out.substr(newline + 1);
  fetched.body = newline == std::string::npos ? std::string() : fetched.run.out.substr(0, newline);
  return fetched;
}

TEST_CASE("curl trusting egressd's CA gets the origin's answer through termination, with SNI passed on" *
          doctest::timeout(60)) {
  HttpsOrigin https;
  Egressd egressd(policy_allowing(curl(), kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  // curl trusts only egressd's CA, never the origin's: success means egressd presented a minted leaf.
  const Fetched fetched = fetch(egressd, https.url("/hello"));
  CHECK(fetched.run.err == "");
  CHECK(fetched.status == "200");
  CHECK(fetched.body == "hello\n");
  REQUIRE(https.origin.requests().size() == 1);
  CHECK(https.origin.requests()[0].sni == kMirror);  // egressd's own TLS to the origin names the host
  CHECK(https.origin.requests()[0].target == "/hello");
  CHECK(https.origin.requests()[0].header("host") ==
        std::string(kMirror) + ":" + std::to_string(https.origin.port()));

  REQUIRE(egressd.wait_for_access_lines(2));
  const auto lines = egressd.access_log_lines();
  CHECK(lines.at(0)["method"] == "CONNECT");
  CHECK(lines.at(1)["method"] == "GET");
  CHECK(lines.at(1)["url"] == https.url("/hello"));
  CHECK(lines.at(1)["binary"] == curl());
}

TEST_CASE("keep-alive inside a terminated tunnel: two URLs, one origin connection, a decision each" *
          doctest::timeout(60)) {
  HttpsOrigin https;
  Egressd egressd(policy_allowing(curl(), kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  const Fetched fetched =
      fetch(egressd, https.url("/bytes?n=5"), {https.url("/hello")});            // extra URLs go first
  CHECK(fetched.run.out == "hello\n\n200" + LocalOrigin::pattern(5) + "\n200");  // -w after each
  CHECK(https.origin.connections_accepted() == 1);
  REQUIRE(egressd.wait_for_access_lines(3));
  const auto lines = egressd.access_log_lines();
  CHECK(lines.size() == 3);
  CHECK(lines.at(1)["url"] == https.url("/hello"));
  CHECK(lines.at(2)["url"] == https.url("/bytes?n=5"));
}

TEST_CASE("a client that does not trust egressd's CA fails its handshake, and the console says why" *
          doctest::timeout(60)) {
  HttpsOrigin https;
  Egressd egressd(policy_allowing(curl(), kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  const RunResult result = run(
      {curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", https.ca.ca_path(), https.url("/hello")});
  CHECK(result.exit_code == 60);  // CURLE_PEER_FAILED_VERIFICATION
  CHECK(egressd.wait_for_stderr("does it trust the egressd CA?"));
  CHECK(https.origin.requests().empty());
}

TEST_CASE("an origin whose CA egressd does not trust gets 502 naming the verification failure" *
          doctest::timeout(60)) {
  HttpsOrigin https;
  Egressd egressd(policy_allowing(curl(), kMirror, https.origin.port()), https.egressd_args(/*trust=*/false));
  INFO(egressd.diagnostics());
  const Fetched fetched = fetch(egressd, https.url("/hello"));
  CHECK(fetched.status == "502");
  const Json body = Json::parse(fetched.body);
  CHECK(body["error"] == "upstream_tls_failed");
  CHECK(body["detail"].str().find("certificate verify failed: unable to get local issuer certificate") !=
        std::string::npos);
  CHECK(egressd.wait_for_stderr("certificate verify failed: unable to get local issuer certificate"));
  CHECK(https.origin.requests().empty());
}

TEST_CASE("a self-signed origin gets 502 naming the verification failure" * doctest::timeout(60)) {
  HttpsOrigin https(TestCa::self_signed_server({kMirror}));
  Egressd egressd(policy_allowing(curl(), kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  const Fetched fetched = fetch(egressd, https.url("/hello"));
  CHECK(fetched.status == "502");
  const Json body = Json::parse(fetched.body);
  CHECK(body["error"] == "upstream_tls_failed");
  CHECK(body["detail"].str().find("certificate verify failed: self-signed certificate") != std::string::npos);
  CHECK(https.origin.requests().empty());
}

TEST_CASE("an origin whose certificate names another host gets 502 hostname mismatch" *
          doctest::timeout(60)) {
  HttpsOrigin https(std::vector<std::string>{"other.example.com"});
  Egressd egressd(policy_allowing(curl(), kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  const Fetched fetched = fetch(egressd, https.url("/hello"));
  CHECK(fetched.status == "502");
  CHECK(Json::parse(fetched.body)["detail"].str().find("certificate verify failed: hostname mismatch") !=
        std::string::npos);
  CHECK(https.origin.requests().empty());
}

TEST_CASE("a Host header naming another host inside the tunnel is denied as domain fronting" *
          doctest::timeout(60)) {
  HttpsOrigin https;
  Egressd egressd(policy_allowing(curl(), kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  const Fetched fetched = fetch(egressd, https.url("/hello"), {"-H", "Host: allowed-elsewhere.example.com"});
  CHECK(fetched.status == "403");
  const Json body = Json::parse(fetched.body);
  CHECK(body["error"] == "policy_denied");
  CHECK(body["reason"].str().find("does not match the CONNECT authority") != std::string::npos);
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == curl());
  CHECK(line["host"] == kMirror);
  CHECK(line["reason"].str().find("domain fronting") != std::string::npos);
  CHECK(https.origin.requests().empty());
}

TEST_CASE("a TLS server name other than the CONNECT host is denied as domain fronting" *
          doctest::timeout(60)) {
  HttpsOrigin https;
  const std::string openssl = real_path_of("openssl");
  Egressd egressd(policy_allowing(openssl, kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  RunOptions options;
  options.stdin_text = "GET /hello HTTP/1.1\r\nHost: mirror.example.com\r\n\r\n";
  const RunResult result = run({openssl, "s_client", "-quiet", "-proxy", egressd.host_port(), "-connect",
                                std::string(kMirror) + ":" + std::to_string(https.origin.port()),
                                "-servername", "fronted.example.com", "-CAfile", egressd.ca_path()},
                               options);
  CHECK(result.out.find("HTTP/1.1 403") != std::string::npos);
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == openssl);
  CHECK(line["reason"].str().find("TLS server name 'fronted.example.com' does not match the CONNECT host") !=
        std::string::npos);
  CHECK(https.origin.requests().empty());
}

TEST_CASE("a tls: skip endpoint is relayed opaque: the client sees the origin's own certificate" *
          doctest::timeout(60)) {
  HttpsOrigin https;
  const std::string yaml = policy_allowing(
      {PolicyRule{"skip", {curl()}, {{kMirror, https.origin.port(), "        tls: skip\n"}}}});
  Egressd egressd(yaml, https.egressd_args());
  INFO(egressd.diagnostics());
  // Trusting only the origin's CA works only if egressd did not terminate.
  const RunResult result = run(
      {curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", https.ca.ca_path(), "--resolve",
       std::string(kMirror) + ":" + std::to_string(https.origin.port()) + ":127.0.0.1", https.url("/hello")});
  CHECK(result.err == "");
  CHECK(result.out == "hello\n");
  REQUIRE(egressd.wait_for_access_lines(1));
  CHECK(egressd.access_log_lines().size() == 1);  // the CONNECT only: nothing inside was seen
}

TEST_CASE("server-sent events reach the client one by one through termination" * doctest::timeout(60)) {
  HttpsOrigin https;
  const std::string python = real_path_of("/usr/bin/python3");
  Egressd egressd(policy_allowing(python, kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  // Prints, per event, how long after the origin sent it the client read it (ms).
  const std::string script = R"(
import ssl, sys, time, urllib.request
proxy, ca, url = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=ca)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy}),
                                     urllib.request.HTTPSHandler(context=ctx))
with opener.open(url, timeout=20) as response:
    for raw in response:
        line = raw.decode().strip()
        if line.startswith("data: "):
            sent_ms = int(line.split()[2])
            print(int(time.time() * 1000) - sent_ms, flush=True)
)";
  const RunResult result =
      run({python, "-c", script, egressd.url(), egressd.ca_path(), https.url("/events?n=5&interval_ms=400")});
  INFO(result.err);
  std::vector<int> delays;
  size_t start = 0;
  for (size_t end; (end = result.out.find('\n', start)) != std::string::npos; start = end + 1) {
    delays.push_back(std::stoi(result.out.substr(start, end - start)));
  }
  REQUIRE(delays.size() == 5);
  for (int delay : delays) {
    CAPTURE(delay);
    CHECK(delay < 300);  // held back until the end, the first would arrive ~1600 ms after it was sent
  }
}

}  // namespace
}  // namespace egressd::test::e2e

namespace egressd::test::e2e {
namespace {

TEST_CASE("inside termination, Expect: 100-continue gets its 100 and the body goes up whole" *
          doctest::timeout(60)) {
  HttpsOrigin https;
  Egressd egressd(policy_allowing(curl(), kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  const std::string body(300 * 1024, 'x');
  const std::string file = https.dir.file("upload.bin");
  write_file(file, body);
  const Fetched fetched =
      fetch(egressd, https.url("/echo"),
            {"-H", "Expect: 100-continue", "--data-binary", "@" + file, "-o", "/dev/null"});
  CHECK(fetched.status == "200");
  REQUIRE(https.origin.requests().size() == 1);
  CHECK(https.origin.requests()[0].header("expect") == "100-continue");
  CHECK(https.origin.requests()[0].body_size == body.size());
}

TEST_CASE("inside termination, an upgrade is relayed both ways after 101" * doctest::timeout(60)) {
  HttpsOrigin https;
  const std::string python = real_path_of("/usr/bin/python3");
  Egressd egressd(policy_allowing(python, kMirror, https.origin.port()), https.egressd_args());
  INFO(egressd.diagnostics());
  const std::string script = R"(
import socket, ssl, sys
proxy_port, host, port, ca = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
raw = socket.create_connection(("127.0.0.1", int(proxy_port)), timeout=20)
raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
assert raw.recv(4096).startswith(b"HTTP/1.1 200")
tls = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname=host)
tls.sendall(f"GET /upgrade HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n".encode())
head = b""
while b"\r\n\r\n" not in head:
    head += tls.recv(4096)
print(head.split(b"\r\n")[0].decode())
for message in (b"ping", b"x" * 100000):
    tls.sendall(message)
    got = b""
    while len(got) < len(message):
        got += tls.recv(65536)
    print(len(got), got == message)
)";
  const RunResult result = run({python, "-c", script, std::to_string(egressd.port()), kMirror,
                                std::to_string(https.origin.port()), egressd.ca_path()});
  INFO(result.err);
  CHECK(result.out == "HTTP/1.1 101 Switching Protocols\n4 True\n100000 True\n");
}

}  // namespace
}  // namespace egressd::test::e2e
