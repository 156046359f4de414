// An HTTP/1.1 origin server inside the test process, on 127.0.0.1 (or ::1) and an ephemeral port, with
// its own threads, in plain HTTP or HTTPS (a certificate from TestCa; TLS 1.2+, ALPN http/1.1). It serves a
// few fixed routes, records every request it receives and counts accepted connections, so tests can prove
// keep-alive reuse and that a denied request never reached it.
//   GET  /hello                  -> 200, the configured body ("hello\n" by default); HEAD too
//   GET  /bytes?n=N              -> 200, pattern(N) with Content-Length; HEAD too
//   GET  /slow?n=N&chunk=K&delay_ms=D[&hold_at=H]
//                                -> 200, chunked: pattern(N) in K-byte chunks every D ms; with hold_at, it
//                                   stops after the chunk that reaches H bytes until release_holds()
//   GET  /events?n=N&interval_ms=D
//                                -> 200, text/event-stream, no-cache, chunked: N events (default 3)
//                                   "data: <i> <ms since the epoch when sent>\n\n", i = 1..N, one chunk
//                                   each, D ms apart (default 100)
//   POST /echo                   -> 200, the request body (Content-Length or chunked request bodies)
//   ANY  /redirect?to=URL[&status=S]
//                                -> S (301, 302, 303, 307 or 308; default 302) with Location: URL;
//                                   another S -> 400
//   GET  /upgrade                -> with `Connection: Upgrade` and `Upgrade: P`: 101 Switching Protocols
//                                   (Upgrade: P), then every byte received is echoed back until EOF;
//                                   without them -> 400
//   ANY  /any, /any/...          -> 200, text/plain "METHOD TARGET\n", the target as on the request line
//                                   (path and query), so tests see which method and path arrived
//   ANY  /git/...                -> after serve_git(ROOT): git's smart HTTP, `git http-backend` run as a
//                                   CGI for each request with GIT_PROJECT_ROOT=ROOT (all repositories
//                                   exported; pushes only where the repository enables http.receivepack)
//   anything else                -> 404
// A HEAD request (to /hello, /bytes, /redirect, /any/... or a 404) gets the head without the body. Keep-alive
// unless the request says `Connection: close`; `Expect: 100-continue` gets its 100. The destructor stops
// serving, closes every connection and joins every thread.
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

struct ServerCert;

struct RecordedRequest {
  std::string method;
  std::string target;  // as on the request line (origin-form, or absolute-form if a proxy sent that)
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, as received
  size_t body_size = 0;
  size_t connection = 0;  // which accepted connection carried it (1-based)
  std::string sni;        // the TLS server name the client sent on that connection; empty for plain HTTP

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
  // Plain HTTP on `address`, any numeric address of this host (in the network namespace the calling
  // thread is in): one a test added to a NetworkNamespace, say.
  static LocalOrigin http_at(const std::string& address, std::string hello_body = "hello\n");
  // HTTPS on 127.0.0.1 with `cert` (say TestCa::issue({"mirror.example.com", "127.0.0.1"})). Clients reach
  // it by any name the certificate lists, resolved to 127.0.0.1 elsewhere (curl or egressd --resolve).
  static LocalOrigin https(const ServerCert& cert, std::string hello_body = "hello\n");
  LocalOrigin(LocalOrigin&&) noexcept;
  LocalOrigin& operator=(LocalOrigin&&) = delete;
  ~LocalOrigin();

  const std::string& host() const;  // "127.0.0.1" or "::1"
  uint16_t port() const;
  std::string host_port() const;  // "127.0.0.1:PORT" or "[::1]:PORT"
  // "http://" or "https://", then host_port() + path (path starts with '/').
  std::string url(std::string_view path) const;
  // The same URL with `name` in place of the address: "https://mirror.example.com:PORT/path".
  std::string url_as(std::string_view name, std::string_view path) const;
  bool is_https() const;

  std::vector<RecordedRequest> requests() const;
  size_t connections_accepted() const;
  // Bytes of /slow bodies sent so far, over all /slow requests.
  size_t slow_bytes_sent() const;
  // Lets every /slow response held at its hold_at point (now or later) go on.
  void release_holds();
  // Serves the git repositories under `project_root` at /git/ (see above).
  void serve_git(std::string project_root);

  // The deterministic body of /bytes and /slow: byte i depends only on i.
  static std::string pattern(size_t n);
  // FNV-1a 64 of `bytes`: compare checksum(body) with checksum(pattern(n)) without printing megabytes.
  static uint64_t checksum(std::string_view bytes);

 private:
  struct State;
  LocalOrigin(const std::string& address, std::string hello_body, const ServerCert* cert);

  std::unique_ptr<State> state_;
};

}  // namespace egressd::test
