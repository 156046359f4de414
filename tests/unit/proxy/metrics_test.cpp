// Metrics rendering (Prometheus text format: cumulative buckets, escaped labels, every series present
// from the start) and what the metrics listener answers to a request head.
#include <doctest/doctest.h>
#include <uv.h>

#include <optional>
#include <string>

#include "proxy/metrics.h"
#include "proxy/metrics_server.h"

using namespace egressd::proxy;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.starts_with(line + "\n") || text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("histogram buckets are cumulative, with +Inf, sum and count") {
  Histogram histogram;
  histogram.observe(0.00004);  // the first bucket
  histogram.observe(0.0003);   // 0.0005
  histogram.observe(10);       // past the last bound
  std::string out;
  histogram.render(out, "h");
  CHECK(has_line(out, "h_bucket{le=\"5e-05\"} 1"));
  CHECK(has_line(out, "h_bucket{le=\"0.00025\"} 1"));
  CHECK(has_line(out, "h_bucket{le=\"0.0005\"} 2"));
  CHECK(has_line(out, "h_bucket{le=\"5\"} 2"));
  CHECK(has_line(out, "h_bucket{le=\"+Inf\"} 3"));
  CHECK(has_line(out, "h_count 3"));
  CHECK(out.find("h_sum 10.00034") != std::string::npos);
}

TEST_CASE("every series is rendered before anything happened, with zeros") {
  Metrics metrics;
  const std::string text = metrics.render({});
  for (const char* line :
       {"egressd_connections_total 0", "egressd_decisions_total{decision=\"allow\"} 0",
        "egressd_decisions_total{decision=\"deny\"} 0", "egressd_policy_reloads_total{result=\"rejected\"} 0",
        "egressd_identification_seconds_count 0", "egressd_leaf_cache_lookups_total{result=\"hit\"} 0",
        "egressd_connections_open{state=\"deciding\"} 0"}) {
    CHECK_MESSAGE(has_line(text, line), line);
  }
}

TEST_CASE("counters add up: denials by reason and engine, bytes of closed and live connections") {
  Metrics metrics;
  metrics.denied("no_rule", "policy");
  metrics.denied("no_rule", "policy");
  metrics.denied("destination", "ssrf");
  metrics.allowed();
  metrics.session_closed(10, 1000);
  metrics.upstream_error("dns_failed");
  metrics.policy_reload("rejected", 0.001);
  Metrics::Gauges gauges;
  gauges.live_bytes_up = 5;
  gauges.live_bytes_down = 7;
  gauges.policy_source = "/etc/egressd/\"odd\"\\name\n";
  const std::string text = metrics.render(gauges);
  CHECK(has_line(text, "egressd_denials_total{reason=\"no_rule\",engine=\"policy\"} 2"));
  CHECK(has_line(text, "egressd_denials_total{reason=\"destination\",engine=\"ssrf\"} 1"));
  CHECK(has_line(text, "egressd_decisions_total{decision=\"deny\"} 3"));
  CHECK(has_line(text, "egressd_decisions_total{decision=\"allow\"} 1"));
  CHECK(has_line(text, "egressd_bytes_total{direction=\"upstream\"} 15"));
  CHECK(has_line(text, "egressd_bytes_total{direction=\"downstream\"} 1007"));
  CHECK(has_line(text, "egressd_upstream_errors_total{kind=\"dns_failed\"} 1"));
  CHECK(has_line(text, "egressd_policy_reloads_total{result=\"rejected\"} 1"));
  CHECK(text.find("source=\"/etc/egressd/\\\"odd\\\"\\\\name\\n\"") != std::string::npos);
}

TEST_CASE("the metrics listener answers GET and HEAD of /metrics and /healthz, and nothing else") {
  std::optional<std::string> unhealthy;
  MetricsServer server(
      uv_default_loop(), [] { return std::string("egressd_x 1\n"); }, [&unhealthy] { return unhealthy; });
  const std::string metrics = server.respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(metrics.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(metrics.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(metrics.ends_with("\r\n\r\negressd_x 1\n"));
  CHECK(server.respond("HEAD /metrics HTTP/1.1\r\n\r\n").ends_with("\r\n\r\n"));
  CHECK(server.respond("GET /healthz HTTP/1.0\r\n\r\n").ends_with("\r\n\r\nok\n"));
  unhealthy = "stopping";
  CHECK(server.respond("GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
  CHECK(server.respond("GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
  CHECK(server.respond("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
  CHECK(server.respond("GET http://evil.example/ HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
  CHECK(server.respond("CONNECT a:443 HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
  CHECK(server.respond("garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
}
