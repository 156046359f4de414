#include "proxy/metrics.h"

#include <fmt/format.h>

namespace egressd::proxy {

void Histogram::observe(double seconds) {
  size_t bucket = 0;
  while (bucket < kBounds.size() && seconds > kBounds[bucket]) ++bucket;
  ++buckets_[bucket];
  ++count_;
  sum_ += seconds;
}

void Histogram::render(std::string& out, std::string_view name) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i];
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], cumulative);
  }
  fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name,
                 count_, name, sum_, name, count_);
}

void Metrics::denied(std::string_view reason, std::string_view engine) {
  ++denials_[{std::string(reason), std::string(engine)}];
}

void Metrics::identification(double seconds, bool ok) {
  identification_.observe(seconds);
  if (!ok) ++identification_failures_;
}

void Metrics::upstream_error(std::string_view kind) {
  ++upstream_errors_[std::string(kind)];
}

void Metrics::policy_reload(std::string_view result, double seconds) {
  ++reloads_[std::string(result)];
  if (result != "unchanged") last_load_seconds_ = seconds;
}

std::string prometheus_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::string Metrics::render(const Gauges& g) const {
  std::string out;
  auto line = [&out](std::string_view name, auto value) {
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
  };

  header(out, "egressd_connections_open", "gauge", "Client connections open now, by what they are doing.");
  fmt::format_to(
      std::back_inserter(out),
      "egressd_connections_open{{state=\"deciding\"}} {}\negressd_connections_open{{state=\"allowed\"}} "
      "{}\negressd_connections_open{{state=\"closing\"}} {}\n",
      g.connections_deciding, g.connections_allowed, g.connections_closing);
  header(out, "egressd_connections_total", "counter", "Client connections accepted since start.");
  line("egressd_connections_total", connections_total_);
  header(out, "egressd_connections_refused_total", "counter",
         "Client connections answered 503 at capacity before anything was read.");
  line("egressd_connections_refused_total", connections_refused_);

  header(out, "egressd_decisions_total", "counter",
         "Policy decisions (a CONNECT or a plain-HTTP request): allowed, denied, or allowed in audit mode.");
  uint64_t denied = 0;
  for (const auto& [key, count] : denials_) denied += count;
  fmt::format_to(
      std::back_inserter(out),
      "egressd_decisions_total{{decision=\"allow\"}} {}\negressd_decisions_total{{decision=\"deny\"}} "
      "{}\negressd_decisions_total{{decision=\"audit\"}} {}\n",
      allowed_, denied, audited_);
  header(out, "egressd_denials_total", "counter", "Denials by reason and by the engine that refused.");
  for (const auto& [key, count] : denials_) {
    fmt::format_to(std::back_inserter(out), "egressd_denials_total{{reason=\"{}\",engine=\"{}\"}} {}\n",
                   prometheus_label(key.first), prometheus_label(key.second), count);
  }

  header(out, "egressd_bytes_total", "counter",
         "Bytes relayed: upstream is client to origin, downstream origin to client.");
  fmt::format_to(std::back_inserter(out),
                 "egressd_bytes_total{{direction=\"upstream\"}} "
                 "{}\negressd_bytes_total{{direction=\"downstream\"}} {}\n",
                 closed_bytes_up_ + g.live_bytes_up, closed_bytes_down_ + g.live_bytes_down);

  header(out, "egressd_identification_seconds", "histogram",
         "Time from accepting a connection to knowing the executable behind it.");
  identification_.render(out, "egressd_identification_seconds");
  header(out, "egressd_identification_failures_total", "counter",
         "Connections whose caller could not be identified (denied).");
  line("egressd_identification_failures_total", identification_failures_);
  header(out, "egressd_identification_scans_total", "counter",
         "Passes over /proc looking for the processes that hold client sockets; one pass serves every "
         "connection waiting when it starts.");
  line("egressd_identification_scans_total", identification_passes_);
  header(out, "egressd_identification_scanned_connections_total", "counter",
         "Connections those passes identified (divided by the passes: the mean batch).");
  line("egressd_identification_scanned_connections_total", identification_pass_callers_);

  header(out, "egressd_leaf_cache_entries", "gauge", "Minted leaf certificates cached for TLS termination.");
  line("egressd_leaf_cache_entries", g.leaf_cache_entries);
  header(out, "egressd_leaf_cache_lookups_total", "counter",
         "Leaf certificate lookups: hit, or minted anew.");
  fmt::format_to(std::back_inserter(out),
                 "egressd_leaf_cache_lookups_total{{result=\"hit\"}} {}\negressd_leaf_cache_lookups_total{{"
                 "result=\"miss\"}} {}\n",
                 g.leaf_cache_hits, g.leaf_cache_misses);

  header(out, "egressd_policy_reloads_total", "counter",
         "Policy reloads: applied, unchanged (same hash), or rejected (the last good policy stays).");
  for (const std::string_view result : {"applied", "unchanged", "rejected"}) {
    const auto it = reloads_.find(std::string(result));
    fmt::format_to(std::back_inserter(out), "egressd_policy_reloads_total{{result=\"{}\"}} {}\n", result,
                   it == reloads_.end() ? 0 : it->second);
  }
  header(out, "egressd_policy_info", "gauge", "The policy in force: its hash and where it came from.");
  fmt::format_to(std::back_inserter(out), "egressd_policy_info{{hash=\"{}\",source=\"{}\"}} 1\n",
                 prometheus_label(g.policy_hash), prometheus_label(g.policy_source));
  header(out, "egressd_policy_rules", "gauge", "network_policies entries in the policy in force.");
  line("egressd_policy_rules", g.policy_rules);
  header(out, "egressd_policy_loaded_timestamp_seconds", "gauge", "When the policy in force was loaded.");
  line("egressd_policy_loaded_timestamp_seconds", fmt::format("{:.3f}", g.policy_loaded_at));
  header(out, "egressd_policy_load_seconds", "gauge",
         "How long the last reload that read a new policy took.");
  line("egressd_policy_load_seconds", last_load_seconds_);

  header(out, "egressd_upstream_errors_total", "counter", "Failures on the way to origins, by kind.");
  for (const auto& [kind, count] : upstream_errors_) {
    fmt::format_to(std::back_inserter(out), "egressd_upstream_errors_total{{kind=\"{}\"}} {}\n",
                   prometheus_label(kind), count);
  }
  return out;
}

}  // namespace egressd::proxy
