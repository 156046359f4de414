// Denials: an unlisted binary (a copy of curl at another path), an endpoint no rule names, and the
// exact 403 egressd writes, field by field in the body and in the deny log.
#include <doctest/doctest.h>
#include <unistd.h>

#include "tests/e2e/scenario.h"
#include "tests/support/http_response.h"
#include "tests/support/local_origin.h"
#include "tests/support/raw_client.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

std::string unlisted_reason(const std::string& binary) {
  return "binary '" + binary + "' not allowed in policy 'test'";
}

TEST_CASE("a copy of curl at an unlisted path gets 403 for CONNECT, logged in the deny log" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string copy = copy_executable(curl(), dir, "curl");
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const RunResult result = run({copy, "-q", "-sS", "-p", "--proxy", egressd.url(), "-o", "/dev/null", "-w",
                                "%{http_connect}", origin.url("/hello")});
  CHECK(result.out == "403");
  CHECK(result.exit_code != 0);  // curl: CONNECT tunnel failed

  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["event"] == "deny");
  CHECK(line["binary"] == copy);
  CHECK(line["pid"] == result.pid);
  CHECK(line["uid"] == ::getuid());
  CHECK(line["ancestors"].is_array());
  CHECK(line["method"] == "CONNECT");
  CHECK(line["host"] == "127.0.0.1");
  CHECK(line["port"] == origin.port());
  CHECK_FALSE(line.has("url"));
  CHECK(line["rules_considered"].contains("test"));
  CHECK(line["reason"] == unlisted_reason(copy));
  CHECK(line["client"].str().starts_with("127.0.0.1:"));
  CHECK(line["policy_hash"].str().size() == 16);
  CHECK(line["session"].is_number());
  CHECK(line["time"].str().ends_with("Z"));
  CHECK(origin.connections_accepted() == 0);
  CHECK(egressd.access_log_lines().empty());
}

TEST_CASE("a copy of curl at an unlisted path gets a JSON 403 for plain HTTP, logged with its URL" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string copy = copy_executable(curl(), dir, "curl");
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const RunResult result = run({copy, "-q", "-sS", "-i", "--proxy", egressd.url(), origin.url("/hello")});
  CHECK(result.exit_code == 0);
  const HttpResponse response = HttpResponse::parse(result.out);
  CHECK(response.status == 403);
  CHECK(response.header("Content-Type") == "application/json");
  CHECK(response.header("Connection") == "close");
  const Json body = Json::parse(response.body);
  CHECK(body["error"] == "policy_denied");
  CHECK(body["detail"] == "GET " + origin.url("/hello") + " not permitted by policy");
  CHECK(body["reason"] == unlisted_reason(copy));
  CHECK(body["binary"] == copy);
  CHECK(body["pid"] == result.pid);
  CHECK(body["host"] == "127.0.0.1");
  CHECK(body["port"] == origin.port());

  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["event"] == "deny");
  CHECK(line["binary"] == copy);
  CHECK(line["pid"] == result.pid);
  CHECK(line["uid"] == ::getuid());
  CHECK(line["method"] == "GET");
  CHECK(line["host"] == "127.0.0.1");
  CHECK(line["port"] == origin.port());
  CHECK(line["url"] == origin.url("/hello"));
  CHECK(line["rules_considered"].contains("test"));
  CHECK(line["reason"] == body["reason"].str());
  CHECK(origin.connections_accepted() == 0);
  CHECK(origin.requests().empty());
}

TEST_CASE(
    "a listed binary asking for an endpoint no rule names is denied, and the reason names the endpoint" *
    doctest::timeout(60)) {
  LocalOrigin allowed = LocalOrigin::http();
  LocalOrigin other = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", allowed.port()));
  INFO(egressd.diagnostics());
  CHECK(connect_status(curl(), egressd, other.url("/hello")) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == curl());
  CHECK(line["port"] == other.port());
  CHECK(line["reason"] ==
        "endpoint 127.0.0.1:" + std::to_string(other.port()) + " is not allowed by any policy");
  CHECK(other.connections_accepted() == 0);
}

TEST_CASE("the CONNECT 403 is exactly a JSON body with Content-Type and Connection: close, then the close" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());  // this test binary: listed nowhere
  REQUIRE(
      client.send("CONNECT " + origin.host_port() + " HTTP/1.1\r\nHost: " + origin.host_port() + "\r\n\r\n"));
  const std::string bytes = client.read_until_close(10s);
  CHECK(client.peer_closed());
  const HttpResponse response = HttpResponse::parse(bytes);
  CHECK(response.version == "HTTP/1.1");
  CHECK(response.status == 403);
  CHECK(response.reason == "Forbidden");
  CHECK(response.header("Content-Type") == "application/json");
  CHECK(response.header("Connection") == "close");
  REQUIRE(response.header("Content-Length").has_value());
  CHECK(std::stoul(*response.header("Content-Length")) == response.body.size());
  CHECK(bytes.ends_with(response.body));  // nothing after the body
  const Json body = Json::parse(response.body);
  CHECK(body["error"] == "policy_denied");
  CHECK(body["detail"] == "CONNECT " + origin.host_port() + " not permitted by policy");
  CHECK(body["reason"] == unlisted_reason(self_exe()));
  CHECK(body["binary"] == self_exe());
  CHECK(body["pid"] == ::getpid());
  CHECK(body["host"] == "127.0.0.1");
  CHECK(body["port"] == origin.port());
  CHECK(origin.connections_accepted() == 0);
}

TEST_CASE("a denied CONNECT to an unresolvable name gets 403, not 502: the decision comes before DNS" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string copy = copy_executable(curl(), dir, "curl");
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  CHECK(connect_status(copy, egressd, "http://denied.invalid:443/") == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["event"] == "deny");
  CHECK(line["host"] == "denied.invalid");
  CHECK(line["port"] == 443);
  CHECK(line["binary"] == copy);
  CHECK(line["reason"].str().find("denied.invalid:443") != std::string::npos);
}

}  // namespace
}  // namespace egressd::test::e2e
