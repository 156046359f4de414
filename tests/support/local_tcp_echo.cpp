#include "tests/support/local_tcp_echo.h"

#include "tests/support/tcp_server.h"

namespace egressd::test {
namespace {

void echo(ServerConnection& io) {
  std::string buffer;
  while (io.read_some(buffer)) {
    if (!io.send_all(buffer)) return;
    buffer.clear();
  }
  // read_some() is false at EOF (the client's half-close) or when stopping; only the former gets a reply.
  if (io.send_all(LocalTcpEcho::kGoodbye)) io.shutdown_write();
}

}  // namespace

LocalTcpEcho::LocalTcpEcho(const std::string& address)
    : server_(std::make_unique<TcpServer>(address, echo)) {}
LocalTcpEcho::LocalTcpEcho(LocalTcpEcho&&) noexcept = default;
LocalTcpEcho::~LocalTcpEcho() = default;

const std::string& LocalTcpEcho::host() const {
  return server_->address();
}
uint16_t LocalTcpEcho::port() const {
  return server_->port();
}
std::string LocalTcpEcho::host_port() const {
  return server_->host_port();
}
size_t LocalTcpEcho::connections_accepted() const {
  return server_->connections_accepted();
}

}  // namespace egressd::test
