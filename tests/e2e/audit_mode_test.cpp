// Audit mode (`mode: audit` for the whole policy or one rule): what the policy would deny is let through,
// with one deny-log line saying would_deny, and the access-log line marked the same way. It relaxes only
// the policy: destination safety, binary digests and a reload back to enforce still refuse.
// A destination that audit lets through must be public: egressd then runs in a network namespace of its
// own (only loopback there) where kPublicAddress is a local address with an echo server behind it, so a
// public address is reachable without any packet leaving the machine.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sched.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/local_tcp_echo.h"
#include "tests/support/raw_client.h"
#include "tests/support/test_ca.h"
#include "tests/support/unique_fd.h"

namespace egressd::test::e2e {
namespace {

constexpr const char* kPublicAddress = "11.22.33.44";  // public by class; only ever on egressd's lo
constexpr const char* kPublicName = "public.test";     // egressd resolves it to kPublicAddress
constexpr const char* kApi = "api.example.com";

const char* const kAuditWarning = "mode: audit: every connection and request this policy would deny";

// While it lives, the calling thread is in the network namespace of process `pid`: a socket made
// meanwhile belongs to that namespace for good.
class InNetworkOf {
 public:
  explicit InNetworkOf(pid_t pid) : own_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    REQUIRE(own_.valid());
    const UniqueFd target(::open(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(target.valid());
    REQUIRE(::setns(target.get(), CLONE_NEWNET) == 0);
  }
  InNetworkOf(const InNetworkOf&) = delete;
  InNetworkOf& operator=(const InNetworkOf&) = delete;
  ~InNetworkOf() { ::setns(own_.get(), CLONE_NEWNET); }

 private:
  UniqueFd own_;
};

// egressd in its own network namespace, where kPublicName resolves to kPublicAddress: an address of
// its loopback interface, with an echo server listening on it.
struct IsolatedEgressd {
  explicit IsolatedEgressd(const std::string& policy, std::vector<std::string> args = {})
      : egressd(policy, with_public_name(std::move(args)), PolicyLayout::File, 10'000ms,
                EgressdNetwork::Isolated) {
    const RunResult added =
        run(egressd.in_network({"ip", "addr", "add", std::string(kPublicAddress) + "/32", "dev", "lo"}));
    INFO(added.err);
    REQUIRE(added.exit_code == 0);
    const InNetworkOf inside(egressd.pid());
    echo.emplace(kPublicAddress);
  }
  static std::vector<std::string> with_public_name(std::vector<std::string> args) {
    args.insert(args.end(), {"--resolve", std::string(kPublicName) + "=" + kPublicAddress});
    return args;
  }
  std::string public_authority() const {
    return std::string(kPublicName) + ":" + std::to_string(echo->port());
  }

  // The status egressd answers `client`'s CONNECT to the echo server with, the client run in egressd's
  // network ("200", "403").
  std::string connect_status(const std::string& client) const {
    return run(egressd.in_network({client, "-q", "-sS", "-p", "--max-time", "10", "--proxy", egressd.url(),
                                   "-o", "/dev/null", "-w", "%{http_connect}",
                                   "http://" + public_authority() + "/"}))
        .out;
  }

  Egressd egressd;
  std::optional<LocalTcpEcho> echo;
};

// A CONNECT from this test binary (listed by no rule) to the echo server, with bytes both ways: returns
// the open tunnel. Made inside egressd's network.
RawClient open_tunnel(const IsolatedEgressd& isolated) {
  const InNetworkOf inside(isolated.egressd.pid());
  RawClient client("127.0.0.1", isolated.egressd.port());
  REQUIRE(client.send(connect_request(isolated.public_authority())));
  const std::string answer = client.read_until("\r\n\r\n");
  REQUIRE(answer.starts_with("HTTP/1.1 200"));
  client.take_received();
  REQUIRE(client.send("ping\n"));
  CHECK(client.read_until("ping\n") == "ping\n");
  client.take_received();
  return client;
}

// The line number of the last line of `yaml` plus one: where a key appended to it stands.
int next_line(const std::string& yaml) {
  return static_cast<int>(std::count(yaml.begin(), yaml.end(), '\n')) + 1;
}

TEST_CASE("policy-level audit: a CONNECT no rule allows goes through, logged once as would_deny" *
          doctest::timeout(90)) {
  const std::string rules =
      policy_allowing({PolicyRule{"github", {"/usr/bin/git"}, {{"api.github.com", 443}}}});
  const std::string policy = rules + "mode: audit\n";
  IsolatedEgressd isolated(policy);
  Egressd& egressd = isolated.egressd;
  INFO(egressd.diagnostics());
  // Loudly, at startup: where the key stands, and what audit still enforces.
  CHECK(egressd.stderr_text().find(egressd.policy_path() + ":" + std::to_string(next_line(rules)) +
                                   ":1: " + kAuditWarning) != std::string::npos);
  CHECK(egressd.stderr_text().find("binary digests are still enforced") != std::string::npos);

  RawClient tunnel = open_tunnel(isolated);  // bytes went to the echo server and back
  CHECK(isolated.echo->connections_accepted() == 1);

  REQUIRE(egressd.wait_for_access_lines(1));
  REQUIRE(egressd.wait_for_deny_lines(1));
  const std::vector<Json> denials = egressd.deny_log_lines();
  REQUIRE(denials.size() == 1);  // one would-be denial, one line
  const Json& line = denials[0];
  const std::string reason = "endpoint " + isolated.public_authority() + " is not allowed by any policy";
  CHECK(line["event"] == "audit");
  CHECK(line["would_deny"].boolean());
  CHECK(line["mode"] == "audit");
  CHECK(line["binary"] == self_exe());
  CHECK(line["method"] == "CONNECT");
  CHECK(line["host"] == kPublicName);
  CHECK(line["port"] == isolated.echo->port());
  CHECK(line["rules_considered"].size() == 0);
  CHECK_FALSE(line.has("rule"));  // no rule in audit mode lists this binary: the policy's mode let it in
  CHECK(line["reason"] == reason);
  CHECK(line["policy_hash"].str().size() == 16);
  const Json access = egressd.access_log_lines().at(0);
  CHECK(access["event"] == "allow");
  CHECK(access["would_deny"].boolean());
  CHECK(access["mode"] == "audit");
  CHECK(access["rule"].is_null());
  CHECK(access["reason"] == reason);
  CHECK(egressd.stderr_text().find("AUDIT " + self_exe()) != std::string::npos);
  CHECK(egressd.stderr_text().find("would be denied: " + reason) != std::string::npos);
}

TEST_CASE("policy-level audit: a POST on a read-only endpoint inside terminated TLS reaches the origin" *
          doctest::timeout(60)) {
  TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  LocalOrigin origin = LocalOrigin::https(ca.issue({kApi}));
  const std::string policy =
      policy_allowing({PolicyRule{
          "api", {curl()}, {{kApi, origin.port(), "        protocol: rest\n        access: read-only\n"}}}}) +
      "mode: audit\n";
  Egressd egressd(policy, {"--resolve", std::string(kApi) + "=127.0.0.1", "--upstream-ca", ca.ca_path()});
  INFO(egressd.diagnostics());
  const RunResult post = run({curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", egressd.ca_path(),
                              "-d", "payload", origin.url_as(kApi, "/any/upload")});
  CHECK(post.out == "POST /any/upload\n");  // the origin's answer: it got the POST
  REQUIRE(origin.requests().size() == 1);
  CHECK(origin.requests()[0].body_size == 7);

  REQUIRE(egressd.wait_for_access_lines(2));
  REQUIRE(egressd.wait_for_deny_lines(1));
  const std::vector<Json> denials = egressd.deny_log_lines();
  REQUIRE(denials.size() == 1);
  const Json& line = denials[0];
  CHECK(line["event"] == "audit");
  CHECK(line["would_deny"].boolean());
  CHECK(line["mode"] == "audit");
  CHECK(line["method"] == "POST");
  CHECK(line["url"] == origin.url_as(kApi, "/any/upload"));
  CHECK(line["rule"] == "api");
  CHECK(line["http_rule"] == "access: read-only");
  CHECK(line["rules_considered"].contains("api"));
  CHECK(line["binary"] == curl());
  CHECK(line["reason"].str().find("POST") != std::string::npos);
  const std::vector<Json> allowed = egressd.access_log_lines();
  CHECK(allowed[0]["method"] == "CONNECT");  // the tunnel itself was allowed by the rule
  CHECK_FALSE(allowed[0].has("would_deny"));
  CHECK(allowed[1]["method"] == "POST");
  CHECK(allowed[1]["would_deny"].boolean());
  CHECK(allowed[1]["mode"] == "audit");
  CHECK(allowed[1]["http_rule"] == "access: read-only");
  CHECK(allowed[1]["reason"] == line["reason"].str());
}

TEST_CASE("per-rule audit lets only that rule's binaries through, and another binary still gets 403" *
          doctest::timeout(90)) {
  TempDir dir;
  const std::string learner = copy_executable(curl(), dir, "curl-learning");
  const std::string policy =
      "version: 1\n"
      "network_policies:\n"
      "  learning:\n"
      "    mode: audit\n"
      "    endpoints: [{ host: api.learning.test, port: 443 }]\n"
      "    binaries: [{ path: \"" +
      learner +
      "\" }]\n"
      "  fixed:\n"
      "    endpoints: [{ host: api.fixed.test, port: 443 }]\n"
      "    binaries: [{ path: \"" +
      curl() + "\" }]\n";
  IsolatedEgressd isolated(policy);
  Egressd& egressd = isolated.egressd;
  INFO(egressd.diagnostics());
  CHECK(egressd.stderr_text().find(egressd.policy_path() + ":4:5: mode: audit: rule 'learning'") !=
        std::string::npos);

  CHECK(isolated.connect_status(learner) == "200");
  CHECK(isolated.connect_status(curl()) == "403");
  CHECK(isolated.echo->connections_accepted() == 1);

  REQUIRE(egressd.wait_for_deny_lines(2));
  const std::vector<Json> lines = egressd.deny_log_lines();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["event"] == "audit");
  CHECK(lines[0]["binary"] == learner);
  CHECK(lines[0]["rule"] == "learning");  // attributed to the rule in audit mode that lists it
  CHECK(lines[0]["would_deny"].boolean());
  CHECK(lines[1]["event"] == "deny");
  CHECK(lines[1]["binary"] == curl());
  CHECK_FALSE(lines[1].has("would_deny"));
  CHECK_FALSE(lines[1].has("mode"));
}

TEST_CASE("audit mode does not relax destination safety: loopback without an endpoint is refused" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string mirror_url = "http://mirror.test:" + std::to_string(origin.port()) + "/hello";
  Egressd egressd(policy_allowing({}) + "mode: audit\n", {"--resolve", "mirror.test=127.0.0.1"});
  INFO(egressd.diagnostics());
  struct Row {
    std::string url;
    const char* subject;
  };
  const Row rows[] = {{origin.url("/hello"), "127.0.0.1 (loopback"},
                      {mirror_url, "mirror.test resolves to 127.0.0.1 (loopback"}};
  size_t lines = 0;
  for (const Row& row : rows) {
    CAPTURE(row.url);
    const Got refused = get_through(egressd, row.url);
    REQUIRE(refused.status == "403");
    const Json body = Json::parse(refused.body);
    CHECK(body["error"] == "ssrf_denied");
    CHECK(body["reason"].str().starts_with(std::string("audit mode does not relax destination safety: ") +
                                           row.subject));
    CHECK(connect_status(curl(), egressd, row.url) == "403");
    // Each request: the would-be denial audit let through, then the refusal of its address.
    lines += 4;
    REQUIRE(egressd.wait_for_deny_lines(lines));
    const std::vector<Json> all = egressd.deny_log_lines();
    for (size_t i = lines - 4; i < lines; i += 2) {
      CHECK(all.at(i)["event"] == "audit");
      CHECK(all.at(i)["would_deny"].boolean());
      CHECK(all.at(i + 1)["event"] == "deny");
      CHECK(all.at(i + 1)["engine"] == "ssrf");
      CHECK_FALSE(all.at(i + 1).has("would_deny"));
    }
  }
  CHECK(origin.connections_accepted() == 0);
}

TEST_CASE("audit mode does not relax destination safety: metadata and private addresses are refused" *
          doctest::timeout(90)) {
  IsolatedEgressd isolated(policy_allowing({}) + "mode: audit\n",
                           {"--resolve", "metadata.test=169.254.169.254", "--resolve",
                            "private.test=10.20.30.40", "--connect-timeout-ms", "3000"});
  Egressd& egressd = isolated.egressd;
  INFO(egressd.diagnostics());
  struct Row {
    const char* host;
    const char* reason;
  };
  const Row rows[] = {{"metadata.test", "which egressd never connects to"},
                      {"private.test", "(private, 10.0.0.0/8"}};
  for (const Row& row : rows) {
    CAPTURE(std::string(row.host));
    const Got got = get_through(egressd, "http://" + std::string(row.host) + ":8080/");
    INFO("body: ", got.body);
    REQUIRE(got.status == "403");  // refused before any dial (a dial would be a 502 in this namespace)
    const Json body = Json::parse(got.body);
    CHECK(body["error"] == "ssrf_denied");
    CHECK(body["reason"].str().find(row.reason) != std::string::npos);
  }
  // The public address is what audit mode may reach.
  CHECK(isolated.connect_status(curl()) == "200");
}

TEST_CASE("audit mode still checks the sha256 pin of the audit rule's binary entry" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string policy =
      "version: 1\n"
      "network_policies:\n"
      "  learning:\n"
      "    mode: audit\n"
      "    endpoints: [{ host: api.learning.test, port: 443 }]\n"
      "    binaries: [{ path: \"" +
      curl() + "\", sha256: \"" + std::string(64, '0') + "\" }]\n";
  Egressd egressd(policy);
  INFO(egressd.diagnostics());
  const Got refused = get_through(egressd, origin.url("/hello"));
  REQUIRE(refused.status == "403");
  const std::string reason = Json::parse(refused.body)["reason"].str();
  CHECK(reason.find("binary '" + curl() + "' has sha256 ") != std::string::npos);
  CHECK(reason.find("but policy 'learning' pins sha256 " + std::string(64, '0')) != std::string::npos);
  REQUIRE(egressd.wait_for_deny_lines(1));
  const std::vector<Json> lines = egressd.deny_log_lines();
  REQUIRE(lines.size() == 1);  // a denial, not a would-be one
  CHECK(lines[0]["event"] == "deny");
  CHECK_FALSE(lines[0].has("would_deny"));
  CHECK(origin.connections_accepted() == 0);
}

TEST_CASE("a reload from audit to enforce revokes the audited tunnel, and the next CONNECT gets 403" *
          doctest::timeout(90)) {
  const std::string enforce =
      policy_allowing({PolicyRule{"github", {"/usr/bin/git"}, {{"api.github.com", 443}}}});
  IsolatedEgressd isolated(enforce + "mode: audit\n");
  Egressd& egressd = isolated.egressd;
  INFO(egressd.diagnostics());
  RawClient tunnel = open_tunnel(isolated);
  REQUIRE(egressd.wait_for_deny_lines(1));

  egressd.write_policy_by_rename(enforce);
  REQUIRE(egressd.wait_for_stderr("policy mode changed: audit -> enforce", 10s));
  tunnel.read_until_close(5s);
  CHECK(tunnel.peer_closed());
  REQUIRE(egressd.wait_for_deny_lines(2));
  CHECK(egressd.deny_log_lines().at(1)["event"] == "revoked");

  CHECK(isolated.connect_status(curl()) == "403");
  REQUIRE(egressd.wait_for_deny_lines(3));
  const Json line = egressd.deny_log_lines().at(2);
  CHECK(line["event"] == "deny");
  CHECK_FALSE(line.has("would_deny"));
  CHECK(isolated.echo->connections_accepted() == 1);
}

TEST_CASE("a reload to audit mode that would revoke a tunnel keeps it, logging one would_deny line" *
          doctest::timeout(60)) {
  LocalTcpEcho echo;
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", echo.port(), "local"));
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send(connect_request(echo.host_port())));
  REQUIRE(client.read_until("\r\n\r\n").starts_with("HTTP/1.1 200"));
  client.take_received();
  REQUIRE(client.send("one\n"));
  REQUIRE(client.read_until("one\n") == "one\n");
  client.take_received();

  // The rule still lists this binary, for another port only; the policy is now in audit mode.
  egressd.write_policy_by_rename(policy_allowing(self_exe(), "127.0.0.1", 9, "local") + "mode: audit\n");
  REQUIRE(egressd.wait_for_stderr("policy mode changed: enforce -> audit", 10s));
  REQUIRE(egressd.wait_for_deny_lines(1));
  REQUIRE(client.send("two\n"));
  CHECK(client.read_until("two\n") == "two\n");  // still open
  const std::vector<Json> lines = egressd.deny_log_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["event"] == "audit");
  CHECK(lines[0]["would_deny"].boolean());
  CHECK(lines[0]["rule"] == "local");
  CHECK(lines[0]["reason"] == "endpoint " + echo.host_port() + " is not allowed by any policy");
  CHECK(egressd.stderr_text().find("would be revoked") != std::string::npos);
}

TEST_CASE("a would-be denial reached through a redirect carries redirected_by in audit mode" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string target = "http://elsewhere.test:" + std::to_string(origin.port()) + "/hello";
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port(), "mirror") + "mode: audit\n",
                  {"--resolve", "elsewhere.test=127.0.0.1"});
  INFO(egressd.diagnostics());
  const RunResult followed = run({curl(), "-q", "-sS", "-L", "--proxy", egressd.url(), "-o", "/dev/null",
                                  "-w", "%{http_code}", origin.url("/redirect?to=" + target)});
  CHECK(followed.out == "403");  // audit let it through the policy; loopback without an endpoint is refused
  REQUIRE(egressd.wait_for_deny_lines(2));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["event"] == "audit");
  CHECK(line["would_deny"].boolean());
  CHECK(line["host"] == "elsewhere.test");
  CHECK(line["rule"] == "mirror");
  REQUIRE(line.has("redirected_by"));
  REQUIRE(line["redirected_by"].size() == 1);
  CHECK(line["redirected_by"].at(0)["status"] == 302);
  CHECK(line["redirected_by"].at(0)["to"] == target);
}

}  // namespace
}  // namespace egressd::test::e2e
