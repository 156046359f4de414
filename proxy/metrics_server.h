// MetricsServer: the --metrics listener. Answers GET /metrics (Prometheus text) and GET /healthz, one
// request per connection, and nothing else: it is not a proxy and never forwards. A scrape that does not
// send its request line within kRequestTimeoutMs, or sends a head over kMaxHeadBytes, is closed; past
// kMaxScrapes connections at once, new ones are closed unanswered. Loop thread only.
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "proxy/uv_handle.h"

namespace egressd::proxy {

class MetricsServer {
 public:
  static constexpr size_t kMaxHeadBytes = 8192;
  static constexpr uint64_t kRequestTimeoutMs = 5000;
  static constexpr size_t kMaxScrapes = 16;

  using Render = std::function<std::string()>;  // the /metrics body
  // Why egressd is not healthy (the 503 body), or nothing when it is.
  using Health = std::function<std::optional<std::string>()>;

  MetricsServer(uv_loop_t* loop, Render render, Health health);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();

  Result<void, std::string> listen(const std::string& host, uint16_t port);
  std::optional<sockaddr_storage> bound() const;
  void stop();  // closes the listener and every open scrape

  // What a request head asks for, as a complete response (status line to body). Exposed for tests.
  std::string respond(std::string_view head) const;

 private:
  class Scrape;
  static void uv_on_connection(uv_stream_t* listener, int status) noexcept;
  static void uv_on_reap(uv_check_t* check) noexcept;
  void on_connection(int status);
  void retire(uint64_t id);

  uv_loop_t* loop_;
  Render render_;
  Health health_;
  UvHandle<uv_tcp_t> listener_;
  UvHandle<uv_check_t> reaper_;
  std::unordered_map<uint64_t, std::unique_ptr<Scrape>> scrapes_;
  std::vector<std::unique_ptr<Scrape>> retired_;
  uint64_t next_id_ = 1;
};

}  // namespace egressd::proxy
