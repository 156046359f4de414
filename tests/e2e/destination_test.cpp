// Destination safety (SSRF): an allowed name is resolved, and every address is checked before anything is
// dialled. Loopback only where the endpoint names it; private ranges only for an exact host or through
// allowed_ips; link-local, metadata and non-unicast never; egressd never dials its own listener.
// Loopback runs on the host network. The other classes run with egressd in a network namespace of its
// own (only loopback there), so a dial that should not happen fails as unreachable (a 502) instead of
// a 403, and no packet can leave the machine either way.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"

namespace egressd::test::e2e {
namespace {

TEST_CASE("a name resolving to loopback is refused before any dial unless its endpoint allows loopback" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string url = "http://mirror.test:" + std::to_string(origin.port()) + "/hello";
  Egressd egressd(policy_allowing({PolicyRule{
                      "mirror", {curl()}, {{"mirror.test", origin.port(), "", /*allowed_ips=*/{}}}}}),
                  {"--resolve", "mirror.test=127.0.0.1"});
  INFO(egressd.diagnostics());

  const Got refused = get_through(egressd, url);
  REQUIRE(refused.status == "403");
  const Json body = Json::parse(refused.body);
  CHECK(body["error"] == "ssrf_denied");
  CHECK(body["reason"].str().find("mirror.test resolves to 127.0.0.1 (loopback") != std::string::npos);
  CHECK(connect_status(curl(), egressd, url) == "403");  // a CONNECT is checked the same way
  CHECK(origin.connections_accepted() == 0);

  REQUIRE(egressd.wait_for_deny_lines(2));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["engine"] == "ssrf");
  CHECK(line["addresses"].contains("127.0.0.1"));
  CHECK(line["rules_considered"].contains("mirror"));
  CHECK(line["binary"] == curl());

  // The way out the reason names: allowed_ips on the endpoint.
  egressd.write_policy_by_rename(
      policy_allowing({PolicyRule{"mirror", {curl()}, {{"mirror.test", origin.port(), "", {"127.0.0.1"}}}}}));
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash=", 10s));
  const Got served = get_through(egressd, url);
  CHECK(served.status == "200");
  CHECK(served.body == "hello\n");
}

TEST_CASE("an endpoint whose host is the loopback literal reaches it, by that literal only" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  CHECK(get_through(egressd, origin.url("/hello")).status == "200");
  // ::ffff:127.0.0.1 is not the name the endpoint gives: no rule matches it.
  CHECK(
      get_through(egressd, "http://[::ffff:127.0.0.1]:" + std::to_string(origin.port()) + "/hello").status ==
      "403");
  CHECK(origin.connections_accepted() == 1);
}

TEST_CASE("egressd never dials its own listener, even where the policy names its address and port" *
          doctest::timeout(60)) {
  Egressd egressd(policy_allowing({}));
  INFO(egressd.diagnostics());
  egressd.write_policy_by_rename(policy_allowing(curl(), "127.0.0.1", egressd.port(), "loop"));
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash=", 10s));
  const Got refused = get_through(egressd, "http://127.0.0.1:" + std::to_string(egressd.port()) + "/x");
  REQUIRE(refused.status == "403");
  CHECK(Json::parse(refused.body)["error"] == "ssrf_denied");
  CHECK(Json::parse(refused.body)["reason"].str().find("egressd's own listening address") !=
        std::string::npos);
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(egressd.deny_log_lines().size() == 1);  // one request, not a loop of them
}

TEST_CASE("address classes in an isolated network: what is refused before a dial, what is dialled" *
          doctest::timeout(120)) {
  constexpr uint16_t kPort = 8080;
  // The wildcard endpoint has no allowed_ips; db.internal.test is named exactly; ops.* lists a range.
  const std::string policy = policy_allowing({PolicyRule{"internal",
                                                         {curl()},
                                                         {{"*.internal.test", kPort, "", {}},
                                                          {"db.internal.test", kPort, "", {}},
                                                          {"metadata.internal.test", kPort, "", {}},
                                                          {"*.ops.test", kPort, "", {"10.20.0.0/16"}}}}});
  struct Row {
    const char* host;
    const char* address;
    const char* want;    // "403": refused before any dial; "502": allowed, dialled, unreachable here
    const char* reason;  // in the 403's reason
  };
  const std::vector<Row> rows = {
      {"app.internal.test", "10.20.30.40", "403", "(private, 10.0.0.0/8"},
      {"cgnat.internal.test", "100.64.1.1", "403", "(private, 100.64.0.0/10"},
      {"ula.internal.test", "fd12::1", "403", "(private, fc00::/7"},
      {"mapped.internal.test", "::ffff:192.168.1.1", "403", "private, 192.168.0.0/16"},
      {"nat64.internal.test", "64:ff9b::a9fe:a9fe", "403", "metadata"},
      {"link.internal.test", "169.254.10.10", "403", "link-local"},
      {"metadata.internal.test", "169.254.169.254", "403", "never connects to"},
      {"mcast.internal.test", "224.0.0.251", "403", "never connects to"},
      {"zero.internal.test", "0.0.0.0", "403", "never connects to"},
      {"db.internal.test", "10.20.30.40", "502", ""},
      {"a.ops.test", "10.20.1.2", "502", ""},
      {"b.ops.test", "10.21.1.2", "403", "not in allowed_ips of policy 'internal'"},
      {"public.internal.test", "198.51.100.7", "403", "documentation"},
  };
  std::vector<std::string> args;
  for (const Row& row : rows)
    args.insert(args.end(), {"--resolve", std::string(row.host) + "=" + row.address});
  args.insert(args.end(), {"--connect-timeout-ms", "3000"});
  Egressd egressd(policy, args, PolicyLayout::File, 10'000ms, EgressdNetwork::Isolated);
  INFO(egressd.diagnostics());
  size_t denials = 0;
  for (const Row& row : rows) {
    INFO("host: ", std::string(row.host), " -> ", std::string(row.address));
    const Got got =
        get_through(egressd, "http://" + std::string(row.host) + ":" + std::to_string(kPort) + "/");
    INFO("body: ", got.body);
    CHECK(got.status == row.want);
    if (std::string_view(row.want) != "403") continue;
    const Json body = Json::parse(got.body);
    CHECK(body["error"] == "ssrf_denied");
    CHECK(body["reason"].str().find(row.reason) != std::string::npos);
    REQUIRE(egressd.wait_for_deny_lines(++denials));
    CHECK(egressd.deny_log_lines().at(denials - 1)["engine"] == "ssrf");
  }
}

TEST_CASE("a hostless endpoint with allowed_ips admits IP-literal CONNECTs in its range, never a name" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string range_policy =
      "version: 1\n"
      "network_policies:\n"
      "  loopback-range:\n"
      "    endpoints:\n"
      "      - { allowed_ips: [127.0.0.0/8], port: " +
      std::to_string(origin.port()) +
      " }\n"
      "    binaries:\n"
      "      - { path: \"" +
      curl() + "\" }\n";
  Egressd egressd(range_policy);
  INFO(egressd.diagnostics());
  CHECK(connect_status(curl(), egressd, origin.url("/hello")) == "200");
  // A name is not an address: the hostless endpoint never matches one, whatever it resolves to.
  CHECK(connect_status(curl(), egressd, "http://localhost:" + std::to_string(origin.port()) + "/hello") ==
        "403");
  CHECK(origin.connections_accepted() == 1);
}

}  // namespace
}  // namespace egressd::test::e2e
