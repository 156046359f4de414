// Metrics: what egressd accepted, decided, moved and failed at, counted on the loop thread and rendered
// in the Prometheus text format (0.0.4) for /metrics. Label values come from small fixed sets (reasons,
// engines, error codes), never from hosts or binaries: a scrape stays small whatever the traffic.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace egressd::proxy {

// A histogram with fixed upper bounds, rendered cumulatively as Prometheus expects.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,    0.025,  0.05,    0.1,    0.25,  1,      5};
  void observe(double seconds);
  // `name`_bucket{le=...}, `name`_sum and `name`_count lines.
  void render(std::string& out, std::string_view name) const;
  uint64_t count() const { return count_; }

 private:
  std::array<uint64_t, kBounds.size() + 1> buckets_{};  // per bucket, not cumulative; last is +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  // What the caller measures at render time: live state is read, not counted.
  struct Gauges {
    uint64_t connections_deciding = 0;  // reading a request head, identifying, verifying
    uint64_t connections_allowed = 0;   // dialling, handshaking, tunnelling or forwarding
    uint64_t connections_closing = 0;   // answered (403, 5xx) and lingering
    uint64_t live_bytes_up = 0;         // bytes moved by connections still open
    uint64_t live_bytes_down = 0;
    uint64_t leaf_cache_entries = 0;
    uint64_t leaf_cache_hits = 0;
    uint64_t leaf_cache_misses = 0;
    std::string policy_hash;
    std::string policy_source;
    uint64_t policy_rules = 0;
    double policy_loaded_at = 0;  // Unix time, seconds
  };

  void connection_accepted() { ++connections_total_; }
  void connection_refused() { ++connections_refused_; }  // 503 at capacity, before anything was read
  void allowed() { ++allowed_; }
  void audited() { ++audited_; }  // allowed although the policy would deny (audit)
  // `reason` and `engine` are short fixed names (see Session::deny and its callers).
  void denied(std::string_view reason, std::string_view engine);
  void session_closed(uint64_t bytes_up, uint64_t bytes_down) {
    closed_bytes_up_ += bytes_up;
    closed_bytes_down_ += bytes_down;
  }
  void identification(double seconds, bool ok);
  // One /proc pass that identified `callers` connections at once (IdentifyQueue).
  void identification_pass(uint64_t callers) {
    ++identification_passes_;
    identification_pass_callers_ += callers;
  }
  void upstream_error(std::string_view kind);  // an error code such as "connect_failed"
  // A policy load or reload: "applied", "unchanged" or "rejected", and how long loading took.
  void policy_reload(std::string_view result, double seconds);

  std::string render(const Gauges& gauges) const;

 private:
  uint64_t connections_total_ = 0;
  uint64_t connections_refused_ = 0;
  uint64_t allowed_ = 0;
  uint64_t audited_ = 0;
  std::map<std::pair<std::string, std::string>, uint64_t> denials_;  // (reason, engine) -> count
  uint64_t closed_bytes_up_ = 0;
  uint64_t closed_bytes_down_ = 0;
  Histogram identification_;
  uint64_t identification_failures_ = 0;
  uint64_t identification_passes_ = 0;
  uint64_t identification_pass_callers_ = 0;
  std::map<std::string, uint64_t> upstream_errors_;
  std::map<std::string, uint64_t> reloads_;
  double last_load_seconds_ = 0;
};

// A label value as the text format wants it: backslash, double quote and newline escaped.
std::string prometheus_label(std::string_view value);

}  // namespace egressd::proxy
