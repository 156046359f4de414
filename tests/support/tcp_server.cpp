#include "tests/support/tcp_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace egressd::test {
namespace {

[[noreturn]] void fail_errno(const std::string& what, int error) {
  throw std::runtime_error("TcpServer: " + what + ": " + std::strerror(error));
}

// Waits until `fd` has `events` or the stop pipe is readable. True only for the former.
bool wait_ready(int fd, short events, int stop_fd, int timeout_ms) {
  while (true) {
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const int ready = ::poll(fds, 2, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    if (fds[1].revents != 0) return false;
    return true;
  }
}

}  // namespace

bool ServerConnection::read_some(std::string& out) {
  if (!wait_ready(fd_, POLLIN, stop_fd_, -1)) return false;
  char buffer[65536];
  while (true) {
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out.append(buffer, static_cast<size_t>(n));
    return true;
  }
}

bool ServerConnection::send_all(std::string_view bytes) {
  while (!bytes.empty()) {
    // Blocking send: stop() shuts the socket down, which ends a send stuck on a peer that stopped reading.
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void ServerConnection::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

void ServerConnection::reset_on_close() {
  const linger abort{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
}

bool ServerConnection::pause_for(std::chrono::milliseconds duration) {
  pollfd fd{stop_fd_, POLLIN, 0};
  return ::poll(&fd, 1, static_cast<int>(duration.count())) == 0;
}

TcpServer::TcpServer(const std::string& address, Handler handler)
    : address_(address), handler_(std::move(handler)) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) fail_errno("pipe2", errno);
  stop_read_.reset(pipe_fds[0]);
  stop_write_.reset(pipe_fds[1]);

  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    length = sizeof(sockaddr_in6);
  } else {
    throw std::runtime_error("TcpServer: not a numeric address: " + address);
  }
  listen_fd_.reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_fd_.valid()) fail_errno("socket", errno);
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    fail_errno("bind " + address + ":0", errno);
  }
  if (::listen(listen_fd_.get(), 128) != 0) fail_errno("listen", errno);
  if (::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    fail_errno("getsockname", errno);
  }
  port_ = ntohs(family == AF_INET ? v4->sin_port : v6->sin6_port);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

std::string TcpServer::host_port() const {
  const bool v6 = address_.find(':') != std::string::npos;
  return (v6 ? "[" + address_ + "]" : address_) + ":" + std::to_string(port_);
}

void TcpServer::accept_loop() {
  while (wait_ready(listen_fd_.get(), POLLIN, stop_read_.get(), -1)) {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) continue;  // EINTR, ECONNABORTED, ...: the next poll tells
    const size_t index = ++accepted_;
    std::lock_guard lock(connections_mutex_);
    if (stopping_) break;
    // Join and forget connections whose handler has returned: an unjoined thread keeps its stack mapped,
    // and a server that lives through thousands of connections (the soak test's) would run out of memory
    // maps. Joining under the lock is safe: a closed connection's thread no longer takes it.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (!it->closed) {
        ++it;
        continue;
      }
      it->thread.join();
      it = connections_.erase(it);
    }
    Connection& connection = connections_.emplace_back();
    connection.fd = std::move(fd);
    connection.thread = std::thread([this, &connection, index] { serve(connection, index); });
  }
}

void TcpServer::serve(Connection& connection, size_t index) {
  ServerConnection io(connection.fd.get(), stop_read_.get(), index);
  try {
    handler_(io);
  } catch (...) {
    // A handler failing on a hostile or truncated request just ends its connection.
  }
  std::lock_guard lock(connections_mutex_);
  connection.fd.reset();
  connection.closed = true;
}

void TcpServer::stop() {
  if (stopping_.exchange(true)) return;
  const char byte = 1;
  [[maybe_unused]] const ssize_t ignored = ::write(stop_write_.get(), &byte, 1);
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard lock(connections_mutex_);
    for (Connection& connection : connections_) {
      if (!connection.closed) ::shutdown(connection.fd.get(), SHUT_RDWR);
    }
  }
  for (Connection& connection : connections_) {
    if (connection.thread.joinable()) connection.thread.join();
  }
}

}  // namespace egressd::test
