// Streams at the byte level: a response streamed through absolute-form forwarding, the idle and connect
// timeouts, a dual-stack listener, and backpressure (a client cannot make egressd buffer without bound toward
// an upstream that does not read). The client here is this test binary (a RawClient), which the policies
// below list on purpose.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/http_response.h"
#include "tests/support/local_origin.h"
#include "tests/support/local_tcp_echo.h"
#include "tests/support/raw_client.h"
#include "tests/support/unique_fd.h"

namespace egressd::test::e2e {
namespace {

// A listening socket that never accepts: connections complete in the kernel's backlog, and nothing
// is ever read from them. With a backlog already full, new connections are not even answered.
class SilentListener {
 public:
  explicit SilentListener(int backlog) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_.get(), backlog) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  uint16_t port() const { return port_; }
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
};

}  // namespace

TEST_CASE("an idle tunnel is closed after --idle-timeout-ms" * doctest::timeout(60)) {
  LocalTcpEcho echo;
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", echo.port()), {"--idle-timeout-ms", "300"});
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send(connect_request(echo.host_port())));
  REQUIRE(client.read_until("\r\n\r\n").starts_with("HTTP/1.1 200"));
  const auto started = std::chrono::steady_clock::now();
  client.read_until_close(10s);
  const auto waited = std::chrono::steady_clock::now() - started;
  CHECK(client.peer_closed());
  CHECK(waited >= 250ms);
  CHECK(waited < 5s);
}

TEST_CASE("an upstream that never completes the TCP handshake gets 504 after --connect-timeout-ms" *
          doctest::timeout(60)) {
  // Backlog 0 and two connections waiting in it: the kernel drops further SYNs, so a connect hangs.
  SilentListener blackhole(0);
  std::vector<UniqueFd> fillers;
  for (int i = 0; i < 3; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(blackhole.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(std::move(fd));
  }
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", blackhole.port()),
                  {"--connect-timeout-ms", "500"});
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(client.send(connect_request(blackhole.host_port())));
  const HttpResponse response = HttpResponse::parse(client.read_until_close(20s));
  const auto waited = std::chrono::steady_clock::now() - started;
  CHECK(response.status == 504);
  CHECK(Json::parse(response.body)["error"] == "timeout");
  CHECK(waited >= 450ms);
  CHECK(waited < 10s);
}

TEST_CASE("backpressure: toward an upstream that reads nothing, egressd stops reading the client" *
          doctest::timeout(60)) {
  SilentListener sink(16);  // accepts in the kernel, never reads
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", sink.port()));
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send(connect_request(sink.host_port())));
  REQUIRE(client.read_until("\r\n\r\n").starts_with("HTTP/1.1 200"));

  // Write without blocking until nothing more is taken for a while. Without backpressure egressd would
  // keep reading into memory and the whole 256 MiB would go through.
  const int fd = ::dup(client.fd());
  REQUIRE(fd >= 0);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const std::string block(64 * 1024, 'x');
  size_t sent = 0;
  constexpr size_t kLimit = 256u * 1024 * 1024;
  while (sent < kLimit) {
    const ssize_t n = ::send(fd, block.data(), block.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 500) == 0) break;  // stalled for 500 ms: egressd stopped reading
  }
  ::close(fd);
  MESSAGE("bytes accepted before the stall: " << sent);
  CHECK(sent < 64u * 1024 * 1024);
  CHECK(egressd.running());
}

TEST_CASE("a tunnel relays megabytes both ways intact to a client that reads slower than it writes" *
          doctest::timeout(120)) {
  // egressd forwards what it reads straight from its read buffer when the socket takes it at once, and
  // copies only the rest. A client that writes 64 KiB per turn but reads 4 KiB makes both happen in both
  // directions, with backpressure stopping and resuming each side: every byte must still arrive, once
  // and in order.
  LocalTcpEcho echo;
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", echo.port()));
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send(connect_request(echo.host_port())));
  REQUIRE(client.read_until("\r\n\r\n").starts_with("HTTP/1.1 200"));
  client.take_received();

  constexpr size_t kTotal = 24u * 1024 * 1024;
  const std::string sent = LocalOrigin::pattern(kTotal);
  std::string echoed;
  echoed.reserve(kTotal);
  size_t written = 0;
  const int fd = client.fd();  // non-blocking
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (echoed.size() < kTotal && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, static_cast<short>(written < kTotal ? POLLIN | POLLOUT : POLLIN), 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    if ((p.revents & POLLOUT) != 0) {
      const size_t step = std::min<size_t>(64 * 1024, kTotal - written);
      const ssize_t n = ::send(fd, sent.data() + written, step, MSG_NOSIGNAL);
      if (n > 0) written += static_cast<size_t>(n);
    }
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char buffer[4096];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
      if (n > 0) echoed.append(buffer, static_cast<size_t>(n));
    }
  }
  CHECK(written == kTotal);
  REQUIRE(echoed.size() == kTotal);
  CHECK(LocalOrigin::checksum(echoed) == LocalOrigin::checksum(sent));
  client.shutdown_write();  // and the half-close still crosses, after all of it
  CHECK(client.read_until_close(10s) == LocalTcpEcho::kGoodbye);
  CHECK(egressd.running());
}

TEST_CASE(
    "an absolute-form response streams through: the client has the first part while the origin holds"
    " the rest" *
    doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  constexpr size_t kTotal = 1 << 20;
  constexpr size_t kHoldAt = 128 * 1024;
  const std::string path =
      "/slow?n=" + std::to_string(kTotal) + "&chunk=16384&delay_ms=1&hold_at=" + std::to_string(kHoldAt);
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send("GET " + origin.url(path) + " HTTP/1.1\r\nHost: ignored.test\r\n\r\n"));
  // The origin is holding after kHoldAt bytes: they must already be here, not buffered in egressd.
  const std::string first = client.read_at_least(kHoldAt, 10s);
  CHECK(first.size() >= kHoldAt);
  CHECK(first.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(first.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(origin.slow_bytes_sent() < kTotal);
  origin.release_holds();
  const std::string all = client.read_until("\r\n0\r\n\r\n", 20s);
  CHECK(all.ends_with("\r\n0\r\n\r\n"));
  // De-chunk and compare with what the origin sent.
  const auto body_start = all.find("\r\n\r\n") + 4;
  std::string body;
  for (size_t at = body_start;;) {
    const auto line_end = all.find("\r\n", at);
    REQUIRE(line_end != std::string::npos);
    const size_t size = std::stoul(all.substr(at, line_end - at), nullptr, 16);
    if (size == 0) break;
    body += all.substr(line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
  CHECK(body.size() == kTotal);
  CHECK(body == LocalOrigin::pattern(kTotal));
}

TEST_CASE("on a dual-stack listener a v4 client is identified through its v4-mapped address" *
          doctest::timeout(60)) {
  LocalTcpEcho echo;
  // The later --listen wins: [::]:0 accepts IPv4 clients as ::ffff:127.0.0.1.
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", echo.port()), {"--listen", "[::]:0"});
  INFO(egressd.diagnostics());
  RawClient client("127.0.0.1", egressd.port());
  REQUIRE(client.send(connect_request(echo.host_port())));
  CHECK(client.read_until("\r\n\r\n") == "HTTP/1.1 200 Connection Established\r\n\r\n");
  REQUIRE(egressd.wait_for_access_lines(1));
  const Json line = egressd.access_log_lines().at(0);
  CHECK(line["binary"] == self_exe());
  CHECK(line["pid"] == ::getpid());
  CHECK(line["client"].str().starts_with("127.0.0.1:"));
}

}  // namespace egressd::test::e2e
