// --metrics: Prometheus text at /metrics and a health check at /healthz, on a listener of their own that
// egressd never reaches through itself. The counters follow what happened: decisions, denials by reason
// and engine, bytes, identification latency, leaf certificates, reloads, upstream errors.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/test_ca.h"

namespace egressd::test::e2e {
namespace {

struct Scraped {
  std::string status;
  std::string body;
};

Scraped scrape(const std::string& address, const std::string& path) {
  const RunResult result =
      run({curl(), "-q", "-sS", "--noproxy", "*", "-w", "\n%{http_code}", "http://" + address + path});
  const size_t newline = result.out.rfind('\n');
  if (newline == std::string::npos) return {"", result.out + result.err};
  return {result.out.substr(newline + 1), result.out.substr(0, newline)};
}

// The value of the sample `series` (name with its labels, exactly as rendered), if present.
std::optional<double> sample(const std::string& text, const std::string& series) {
  const std::string prefix = series + " ";
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (line.starts_with(prefix)) return std::stod(line.substr(prefix.size()));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return std::nullopt;
}

double value(const std::string& text, const std::string& series) {
  const auto found = sample(text, series);
  INFO(text);
  REQUIRE_MESSAGE(found.has_value(), series);
  return *found;
}

TEST_CASE("metrics count decisions, denials by reason, bytes and identification as they happen" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()), {"--metrics", "127.0.0.1:0"});
  INFO(egressd.diagnostics());
  const std::string address = metrics_address(egressd);

  const Scraped before = scrape(address, "/metrics");
  REQUIRE(before.status == "200");
  CHECK(value(before.body, "egressd_connections_total") == 0);
  CHECK(value(before.body, "egressd_decisions_total{decision=\"allow\"}") == 0);

  const Got allowed = get_through(egressd, origin.url("/bytes?n=100000"));
  REQUIRE(allowed.status == "200");
  REQUIRE(allowed.body.size() == 100000);
  const Got posted = get_through(egressd, origin.url("/echo"), {"--data-binary", std::string(5000, 'u')});
  REQUIRE(posted.status == "200");
  const Got denied = get_through(egressd, "http://127.0.0.1:1/");  // no rule names port 1
  REQUIRE(denied.status == "403");

  const Scraped after = scrape(address, "/metrics");
  REQUIRE(after.status == "200");
  CHECK(value(after.body, "egressd_connections_total") == 3);
  CHECK(value(after.body, "egressd_decisions_total{decision=\"allow\"}") == 2);
  CHECK(value(after.body, "egressd_decisions_total{decision=\"deny\"}") == 1);
  CHECK(value(after.body, "egressd_denials_total{reason=\"no_rule\",engine=\"policy\"}") == 1);
  CHECK(value(after.body, "egressd_bytes_total{direction=\"downstream\"}") >= 100000 + 5000);
  CHECK(value(after.body, "egressd_bytes_total{direction=\"upstream\"}") >= 5000);
  CHECK(value(after.body, "egressd_identification_seconds_count") == 3);
  CHECK(value(after.body, "egressd_identification_seconds_bucket{le=\"+Inf\"}") == 3);
  CHECK(value(after.body, "egressd_identification_failures_total") == 0);
  CHECK(after.body.find("# TYPE egressd_identification_seconds histogram") != std::string::npos);
}

TEST_CASE("healthz answers ok, and only GET and HEAD of the two paths are served" * doctest::timeout(60)) {
  Egressd egressd(policy_allowing({}), {"--metrics", "127.0.0.1:0"});
  INFO(egressd.diagnostics());
  const std::string address = metrics_address(egressd);
  const Scraped health = scrape(address, "/healthz");
  CHECK(health.status == "200");
  CHECK(health.body == "ok\n");
  CHECK(scrape(address, "/").status == "404");
  const RunResult post = run({curl(), "-q", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
                              "-X", "POST", "http://" + address + "/metrics"});
  CHECK(post.out == "405");
}

TEST_CASE("the metrics listener is never reached through the proxy" * doctest::timeout(60)) {
  Egressd egressd(policy_allowing({}), {"--metrics", "127.0.0.1:0"});
  INFO(egressd.diagnostics());
  const std::string address = metrics_address(egressd);
  const uint16_t port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  // Even a policy that names the metrics address outright does not make egressd dial it.
  egressd.write_policy_by_rename(policy_allowing(curl(), "127.0.0.1", port));
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash=", 10s));
  const Got got = get_through(egressd, "http://" + address + "/metrics");
  CHECK(got.status == "403");
  CHECK(got.body.find("own listening address") != std::string::npos);
  CHECK(got.body.find("egressd_connections_total") == std::string::npos);
  CHECK(connect_status(curl(), egressd, "https://" + address + "/") == "403");
}

TEST_CASE("a rejected reload bumps the rejected counter and keeps the policy hash" * doctest::timeout(60)) {
  Egressd egressd(policy_allowing({}), {"--metrics", "127.0.0.1:0"});
  INFO(egressd.diagnostics());
  const std::string address = metrics_address(egressd);
  const std::string first = scrape(address, "/metrics").body;
  CHECK(value(first, "egressd_policy_reloads_total{result=\"rejected\"}") == 0);
  const size_t hash_at = first.find("egressd_policy_info{hash=\"");
  REQUIRE(hash_at != std::string::npos);
  const std::string info_line = first.substr(hash_at, first.find('\n', hash_at) - hash_at);

  egressd.write_policy_in_place("network_policies: [unclosed\n");
  REQUIRE(egressd.wait_for_stderr("policy rejected (1 since start)", 10s));
  const std::string rejected = scrape(address, "/metrics").body;
  CHECK(value(rejected, "egressd_policy_reloads_total{result=\"rejected\"}") == 1);
  CHECK(rejected.find(info_line) != std::string::npos);  // the last good policy is still the one in force

  egressd.write_policy_by_rename(policy_allowing(curl(), "127.0.0.1", 8080));
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash=", 10s));
  const std::string applied = scrape(address, "/metrics").body;
  CHECK(value(applied, "egressd_policy_reloads_total{result=\"applied\"}") == 1);
  CHECK(value(applied, "egressd_policy_rules") == 1);
  CHECK(applied.find(info_line) == std::string::npos);
  CHECK(value(applied, "egressd_policy_loaded_timestamp_seconds") >=
        value(rejected, "egressd_policy_loaded_timestamp_seconds"));
}

TEST_CASE("upstream errors are counted by kind, and leaf certificates by hit and miss" *
          doctest::timeout(60)) {
  TempDir dir;
  TestCa ca = TestCa::create(dir.path());
  LocalOrigin tls_origin = LocalOrigin::https(ca.issue({"mirror.example.com"}));
  uint16_t closed = 0;
  {
    LocalOrigin gone = LocalOrigin::http();
    closed = gone.port();
  }
  Egressd egressd(policy_allowing({PolicyRule{
                      "both", {curl()}, {{"mirror.example.com", tls_origin.port()}, {"127.0.0.1", closed}}}}),
                  {"--metrics", "127.0.0.1:0", "--resolve", "mirror.example.com=127.0.0.1", "--upstream-ca",
                   ca.ca_path()});
  INFO(egressd.diagnostics());
  const std::string address = metrics_address(egressd);

  CHECK(get_through(egressd, "http://127.0.0.1:" + std::to_string(closed) + "/").status == "502");
  for (int i = 0; i < 2; ++i) {
    const Got got = get_through(egressd, tls_origin.url_as("mirror.example.com", "/hello"),
                                {"--cacert", egressd.ca_path()});
    CHECK(got.status == "200");
  }
  const std::string text = scrape(address, "/metrics").body;
  CHECK(value(text, "egressd_upstream_errors_total{kind=\"upstream_unreachable\"}") == 1);
  CHECK(value(text, "egressd_leaf_cache_entries") == 1);
  CHECK(value(text, "egressd_leaf_cache_lookups_total{result=\"miss\"}") == 1);
  CHECK(value(text, "egressd_leaf_cache_lookups_total{result=\"hit\"}") == 1);
}

TEST_CASE("a policy file made unreadable is rejected and counted, and the last good policy stays" *
          doctest::timeout(60)) {
  // egressd runs as root holding only CAP_SYS_PTRACE, so file permissions apply to it (which also means
  // it cannot inspect every process, so it would deny every caller: only the policy is looked at here).
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()),
                  {"--metrics", "127.0.0.1:0", "--no-watch"}, PolicyLayout::File, 10'000ms,
                  EgressdNetwork::Host, EgressdUser{0, 0, {"sys_ptrace"}});
  INFO(egressd.diagnostics());
  const std::string address = metrics_address(egressd);
  const std::string before = scrape(address, "/metrics").body;
  const size_t info_at = before.find("egressd_policy_info{");
  REQUIRE(info_at != std::string::npos);
  const std::string info_line = before.substr(info_at, before.find('\n', info_at) - info_at);
  REQUIRE(::chmod(egressd.policy_path().c_str(), 0) == 0);
  egressd.sighup();
  REQUIRE(egressd.wait_for_stderr("policy rejected (1 since start)", 10s));
  CHECK(egressd.stderr_text().find("Permission denied") != std::string::npos);
  const std::string after = scrape(address, "/metrics").body;
  CHECK(value(after, "egressd_policy_reloads_total{result=\"rejected\"}") == 1);
  CHECK(after.find(info_line) != std::string::npos);  // the last good policy is still in force
  CHECK(value(after, "egressd_policy_rules") == 1);
}

}  // namespace
}  // namespace egressd::test::e2e
