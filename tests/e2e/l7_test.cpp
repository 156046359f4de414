// HTTP rules (protocol: rest) on requests egressd sees: inside terminated TLS, inside a plaintext
// CONNECT and in absolute-form. A refused request gets a JSON 403 and the connection stays usable.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/raw_client.h"
#include "tests/support/test_ca.h"

namespace egressd::test::e2e {
namespace {

constexpr const char* kApi = "api.example.com";

struct RestOrigin {
  explicit RestOrigin(const std::string& endpoint_keys)
      : ca(TestCa::create(dir.path())), origin(LocalOrigin::https(ca.issue({kApi}))) {
    yaml = policy_allowing({PolicyRule{"api", {curl()}, {{kApi, origin.port(), endpoint_keys}}}});
  }
  std::vector<std::string> egressd_args() const {
    return {"--resolve", std::string(kApi) + "=127.0.0.1", "--upstream-ca", ca.ca_path()};
  }
  std::string url(std::string_view path) const { return origin.url_as(kApi, path); }

  TempDir dir;
  TestCa ca;
  LocalOrigin origin;
  std::string yaml;
};

// Runs curl through egressd trusting its CA; returns "STATUS BODY" per URL, in order ("-w" after each).
std::vector<std::string> statuses(const Egressd& egressd, std::vector<std::string> args) {
  std::vector<std::string> argv{curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", egressd.ca_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  const RunResult result = run(argv);
  INFO(result.err);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t end; (end = result.out.find("|END\n", start)) != std::string::npos; start = end + 5) {
    out.push_back(result.out.substr(start, end - start));
  }
  return out;
}

const std::string kWrite = "%{http_code}|END\n";

TEST_CASE("read-only access lets GET through and refuses POST with a JSON 403 naming policy and rule" *
          doctest::timeout(60)) {
  RestOrigin api("        protocol: rest\n        access: read-only\n");
  Egressd egressd(api.yaml, api.egressd_args());
  INFO(egressd.diagnostics());
  const RunResult get = run({curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", egressd.ca_path(),
                             api.url("/any/repos/x")});
  CHECK(get.out == "GET /any/repos/x\n");

  const RunResult post = run({curl(), "-q", "-sS", "-D", "-", "--proxy", egressd.url(), "--cacert",
                              egressd.ca_path(), "-d", "payload", api.url("/any/upload?x=1")});
  // -D - shows the CONNECT's 200 first, then the refused request's head.
  CHECK(post.out.find("\r\n\r\nHTTP/1.1 403 Forbidden\r\n") != std::string::npos);
  CHECK(post.out.find("X-Egressd-Policy: api\r\n") != std::string::npos);
  const Json body = Json::parse(post.out.substr(post.out.rfind("\r\n\r\n") + 4));
  CHECK(body["error"] == "policy_denied");
  CHECK(body["policy"] == "api");
  CHECK(body["rule"] == "access: read-only");
  CHECK(body["method"] == "POST");
  CHECK(body["path"] == "/any/upload?x=1");
  CHECK(body["host"] == kApi);
  CHECK(body["binary"] == curl());
  CHECK(api.origin.requests().size() == 1);  // the POST never reached the origin

  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["event"] == "deny");
  CHECK(line["method"] == "POST");
  CHECK(line["url"] == api.url("/any/upload?x=1"));
  CHECK(line["rule"] == "api");
  CHECK(line["http_rule"] == "access: read-only");
  CHECK(line["binary"] == curl());
}

TEST_CASE("after a refused request with a body, the next request on the same connection is served" *
          doctest::timeout(60)) {
  RestOrigin api("        protocol: rest\n        access: read-only\n");
  Egressd egressd(api.yaml, api.egressd_args());
  INFO(egressd.diagnostics());
  const auto out = statuses(egressd, {"-w", kWrite, "-o", "/dev/null", "-d", "payload", api.url("/any/a"),
                                      "--next", "--proxy", egressd.url(), "--cacert", egressd.ca_path(), "-w",
                                      kWrite, "-o", "/dev/null", api.url("/any/b")});
  REQUIRE(out.size() == 2);
  CHECK(out[0] == "403");
  CHECK(out[1] == "200");
  CHECK(api.origin.connections_accepted() == 1);
  REQUIRE(egressd.wait_for_access_lines(2));
  CHECK(egressd.access_log_lines().size() == 2);  // the CONNECT, the GET: one tunnel carried both requests
}

TEST_CASE("allow rules match method and path globs, and deny_rules win over them" * doctest::timeout(60)) {
  RestOrigin api(
      "        protocol: rest\n"
      "        rules:\n"
      "          - allow: { method: GET, path: \"/any/repos/**\" }\n"
      "          - allow: { method: POST, path: \"/any/repos/*/issues\" }\n"
      "        deny_rules:\n"
      "          - { method: \"*\", path: \"/any/repos/secret/**\" }\n");
  Egressd egressd(api.yaml, api.egressd_args());
  INFO(egressd.diagnostics());
  struct Row {
    const char* method;
    const char* path;
    const char* want;
  };
  const Row rows[] = {{"GET", "/any/repos/a/b/c", "200"},       {"POST", "/any/repos/a/issues", "200"},
                      {"POST", "/any/repos/a/b/issues", "403"}, {"DELETE", "/any/repos/a", "403"},
                      {"GET", "/any/repos/secret/x", "403"},    {"GET", "/any/other", "403"}};
  for (const Row& row : rows) {
    CAPTURE(row.method);
    CAPTURE(row.path);
    const auto out =
        statuses(egressd, {"-X", row.method, "-o", "/dev/null", "-w", kWrite, api.url(row.path)});
    REQUIRE(out.size() == 1);
    CHECK(out[0] == row.want);
  }
}

TEST_CASE("enforcement: audit lets a would-be denied request through and logs it as audit" *
          doctest::timeout(60)) {
  RestOrigin api("        protocol: rest\n        enforcement: audit\n        access: read-only\n");
  Egressd egressd(api.yaml, api.egressd_args());
  INFO(egressd.diagnostics());
  const RunResult post = run({curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", egressd.ca_path(),
                              "-X", "DELETE", api.url("/any/thing")});
  CHECK(post.out == "DELETE /any/thing\n");
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["event"] == "audit");
  CHECK(line["method"] == "DELETE");
  CHECK(line["http_rule"] == "access: read-only");
}

TEST_CASE("a plaintext CONNECT to a protocol: rest endpoint is inspected like any HTTP" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string yaml = policy_allowing(
      {PolicyRule{"api",
                  {curl()},
                  {{"127.0.0.1", origin.port(), "        protocol: rest\n        access: read-only\n"}}}});
  Egressd egressd(yaml);
  INFO(egressd.diagnostics());
  const RunResult get = run({curl(), "-q", "-sS", "-p", "--proxy", egressd.url(), origin.url("/any/x")});
  CHECK(get.out == "GET /any/x\n");
  const RunResult post = run({curl(), "-q", "-sS", "-p", "--proxy", egressd.url(), "-o", "/dev/null", "-w",
                              "%{http_code}", "-d", "x", origin.url("/any/x")});
  CHECK(post.out == "403");
  CHECK(origin.requests().size() == 1);
}

TEST_CASE("absolute-form requests to a protocol: rest endpoint are checked too" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string yaml = policy_allowing(
      {PolicyRule{"api",
                  {curl()},
                  {{"127.0.0.1", origin.port(), "        protocol: rest\n        access: read-only\n"}}}});
  Egressd egressd(yaml);
  INFO(egressd.diagnostics());
  CHECK(http_status(curl(), egressd, origin.url("/any/x")) == "200");
  const RunResult put = run({curl(), "-q", "-sS", "--proxy", egressd.url(), "-o", "/dev/null", "-w",
                             "%{http_code}", "-X", "PUT", origin.url("/any/x")});
  CHECK(put.out == "403");
}

TEST_CASE("a body smuggled past the rules by Connection: content-length stays a body upstream" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string yaml = policy_allowing(
      {PolicyRule{"api",
                  {self_exe()},
                  {{"127.0.0.1", origin.port(), "        protocol: rest\n        access: read-only\n"}}}});
  Egressd egressd(yaml);
  INFO(egressd.diagnostics());
  // A GET read-only allows, whose body is a DELETE it does not. Had egressd dropped Content-Length as
  // hop-by-hop (Connection names it), the origin would read the body as a second, undecided request.
  const std::string smuggled = "DELETE /any/secret HTTP/1.1\r\nHost: " + origin.host_port() + "\r\n\r\n";
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send("GET " + origin.url("/any/ok") + " HTTP/1.1\r\nHost: " + origin.host_port() +
                      "\r\nConnection: content-length\r\nContent-Length: " + std::to_string(smuggled.size()) +
                      "\r\n\r\n" + smuggled));
  CHECK(client.read_until("GET /any/ok\n").find("200 OK") != std::string::npos);
  client.shutdown_write();
  client.read_until_close(5s);
  const auto requests = origin.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "GET");
  CHECK(requests[0].body_size == smuggled.size());
}

}  // namespace
}  // namespace egressd::test::e2e
