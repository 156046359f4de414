// Real clients other than curl through TLS termination: wget and node trust egressd's CA and get the
// origin's answer; the same clients unlisted get the JSON 403 for their CONNECT.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/test_ca.h"

namespace egressd::test::e2e {
namespace {

constexpr const char* kMirror = "mirror.example.com";

struct Mirror {
  Mirror() : ca(TestCa::create(dir.path())), origin(LocalOrigin::https(ca.issue({kMirror}))) {}
  std::vector<std::string> egressd_args() const {
    return {"--resolve", std::string(kMirror) + "=127.0.0.1", "--upstream-ca", ca.ca_path()};
  }
  TempDir dir;
  TestCa ca;
  LocalOrigin origin;
};

RunResult wget_through(const std::string& wget, const Egressd& egressd, const std::string& url) {
  return run({wget, "-q", "-O", "-", "--no-hsts", "--ca-certificate=" + egressd.ca_path(), "-e",
              "use_proxy=yes", "-e", "https_proxy=" + egressd.url(), url});
}

// node's TLS over a CONNECT tunnel it opens itself (node has no proxy support of its own); the CA
// comes from NODE_EXTRA_CA_CERTS, as a user would set it. Prints "STATUS BODY" or "CONNECT STATUS".
constexpr const char* kNodeScript = R"(
const http = require('http'), tls = require('tls');
const [proxyPort, host, port, path] = process.argv.slice(1);
const connect = http.request({host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: `${host}:${port}`});
connect.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.log(`CONNECT ${res.statusCode}`); socket.destroy(); return; }
  const secure = tls.connect({socket, servername: host}, () => {
    secure.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`);
  });
  let response = '';
  secure.on('data', (d) => { response += d; });
  secure.on('end', () => {
    const [head, body] = response.split('\r\n\r\n');
    console.log(`${head.split(' ')[1]} ${body.trim()}`);
  });
  secure.on('error', (e) => console.log(`error ${e.message}`));
});
connect.on('error', (e) => console.log(`error ${e.message}`));
connect.end();
)";

RunResult node_through(const std::string& node, const Egressd& egressd, const Mirror& mirror) {
  RunOptions options;
  options.env = {"NODE_EXTRA_CA_CERTS=" + egressd.ca_path()};
  return run({node, "-e", kNodeScript, std::to_string(egressd.port()), kMirror,
              std::to_string(mirror.origin.port()), "/hello"},
             options);
}

TEST_CASE("wget trusting egressd's CA fetches through termination; an unlisted wget gets 403" *
          doctest::timeout(60)) {
  Mirror mirror;
  const std::string wget = real_path_of("wget");
  const std::string url = mirror.origin.url_as(kMirror, "/hello");
  {
    Egressd egressd(policy_allowing(wget, kMirror, mirror.origin.port()), mirror.egressd_args());
    INFO(egressd.diagnostics());
    const RunResult fetched = wget_through(wget, egressd, url);
    CHECK(fetched.exit_code == 0);
    CHECK(fetched.out == "hello\n");
    REQUIRE(egressd.wait_for_access_lines(2));
    CHECK(egressd.access_log_lines().at(1)["binary"] == wget);
    CHECK(egressd.access_log_lines().at(1)["url"] == url);
  }
  Egressd egressd(policy_allowing(curl(), kMirror, mirror.origin.port()), mirror.egressd_args());
  INFO(egressd.diagnostics());
  const RunResult denied = wget_through(wget, egressd, url);
  CHECK(denied.exit_code != 0);
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(egressd.deny_log_lines().at(0)["binary"] == wget);
  CHECK(egressd.deny_log_lines().at(0)["host"] == kMirror);
}

TEST_CASE("node with NODE_EXTRA_CA_CERTS fetches through termination; an unlisted node gets 403" *
          doctest::timeout(60)) {
  Mirror mirror;
  const std::string node = real_path_of("node");
  {
    Egressd egressd(policy_allowing(node, kMirror, mirror.origin.port()), mirror.egressd_args());
    INFO(egressd.diagnostics());
    const RunResult fetched = node_through(node, egressd, mirror);
    INFO(fetched.err);
    CHECK(fetched.out == "200 hello\n");
    CHECK(mirror.origin.requests().at(0).sni == kMirror);
  }
  Egressd egressd(policy_allowing(curl(), kMirror, mirror.origin.port()), mirror.egressd_args());
  INFO(egressd.diagnostics());
  CHECK(node_through(node, egressd, mirror).out == "CONNECT 403\n");
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(egressd.deny_log_lines().at(0)["binary"] == node);
}

}  // namespace
}  // namespace egressd::test::e2e
