// A raw TCP echo server inside the test process (127.0.0.1 or ::1, ephemeral port): the far end of a
// CONNECT tunnel carrying arbitrary bytes. It echoes every byte; once the client half-closes, it sends
// "\nbye\n" and closes, so a test can see both directions of a half-close cross the tunnel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace egressd::test {

class TcpServer;

class LocalTcpEcho {
 public:
  static constexpr const char* kGoodbye = "\nbye\n";

  explicit LocalTcpEcho(const std::string& address = "127.0.0.1");
  LocalTcpEcho(LocalTcpEcho&&) noexcept;
  LocalTcpEcho& operator=(LocalTcpEcho&&) = delete;
  ~LocalTcpEcho();  // stops serving and joins every thread

  const std::string& host() const;
  uint16_t port() const;
  std::string host_port() const;  // "127.0.0.1:PORT" or "[::1]:PORT"
  size_t connections_accepted() const;

 private:
  std::unique_ptr<TcpServer> server_;
};

}  // namespace egressd::test
