// An HTTP/1.1 origin server inside the test process, on 127.0.0.1 (or ::1) and an ephemeral port, with
// its own threads. It serves a few fixed routes, records every request it receives and counts accepted
// connections, so tests can prove keep-alive reuse and that a denied request never reached it.
//   GET  /hello                  -> 200, the configured body ("hello\n" by default)
//   GET  /bytes?n=N              -> 200, pattern(N) with Content-Length
//   GET  /slow?n=N&chunk=K&delay_ms=D[&hold_at=H]
//                                -> 200, chunked: pattern(N) in K-byte chunks every D ms; with hold_at, it
//                                   stops after the chunk that reaches H bytes until release_holds()
//   POST /echo                   -> 200, the request body (Content-Length or chunked request bodies)
//   GET  /redirect?to=URL        -> 302 with Location: URL
//   anything else                -> 404
// Keep-alive unless the request says `Connection: close`; `Expect: 100-continue` gets its 100.
// The destructor stops serving, closes every connection and joins every thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::test {

struct RecordedRequest {
  std::string method;
  std::string target;  // as on the request line (origin-form, or absolute-form if a proxy sent that)
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, as received
  size_t body_size = 0;
  size_t connection = 0;  // which accepted connection carried it (1-based)

  // The first header named `name` (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
  bool has_header(std::string_view name) const { return header(name).has_value(); }
  // The request line and headers as received (for INFO() when a check fails).
  std::string head_text() const;
};

class LocalOrigin {
 public:
  static LocalOrigin http(std::string hello_body = "hello\n");     // 127.0.0.1
  static LocalOrigin http_v6(std::string hello_body = "hello\n");  // ::1
  LocalOrigin(LocalOrigin&&) noexcept;
  LocalOrigin& operator=(LocalOrigin&&) = delete;
  ~LocalOrigin();

  const std::string& host() const;  // "127.0.0.1" or "::1"
  uint16_t port() const;
  std::string host_port() const;                 // "127.0.0.1:PORT" or "[::1]:PORT"
  std::string url(std::string_view path) const;  // "http://" + host_port() + path (path starts with '/')

  std::vector<RecordedRequest> requests() const;
  size_t connections_accepted() const;
  // Bytes of /slow bodies sent so far, over all /slow requests.
  size_t slow_bytes_sent() const;
  // Lets every /slow response held at its hold_at point (now or later) go on.
  void release_holds();

  // The deterministic body of /bytes and /slow: byte i depends only on i.
  static std::string pattern(size_t n);
  // FNV-1a 64 of `bytes`: compare checksum(body) with checksum(pattern(n)) without printing megabytes.
  static uint64_t checksum(std::string_view bytes);

 private:
  struct State;
  LocalOrigin(const std::string& address, std::string hello_body);

  std::unique_ptr<State> state_;
};

}  // namespace egressd::test
