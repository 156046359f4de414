#include "tests/support/raw_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace egressd::test {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

[[noreturn]] void fail(const std::string& what, int error) {
  throw std::runtime_error("RawClient: " + what + ": " + std::strerror(error));
}

}  // namespace

RawClient::RawClient(const std::string& host, uint16_t port, std::chrono::milliseconds deadline) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
  } else {
    throw std::runtime_error("RawClient: not a numeric address: " + host);
  }
  // Non-blocking from the start: connect and every read/write wait in poll() with a deadline.
  fd_.reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd_.valid()) fail("socket", errno);
  const std::string target = host + ":" + std::to_string(port);
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    if (errno != EINPROGRESS) fail("connect " + target, errno);
    pollfd fd{fd_.get(), POLLOUT, 0};
    if (::poll(&fd, 1, static_cast<int>(deadline.count())) != 1) fail("connect " + target, ETIMEDOUT);
    int error = 0;
    socklen_t error_length = sizeof error;
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &error, &error_length);
    if (error != 0) fail("connect " + target, error);
  }
  sockaddr_storage local{};
  socklen_t local_length = sizeof local;
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&local), &local_length) == 0) {
    local_port_ = ntohs(local.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&local)->sin_port
                                                   : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
  }
}

bool RawClient::read_once(int timeout_ms) {
  if (peer_closed_) return false;
  pollfd fd{fd_.get(), POLLIN, 0};
  const int ready = ::poll(&fd, 1, timeout_ms);
  if (ready < 0 && errno == EINTR) return true;
  if (ready == 0) return false;
  char buffer[65536];
  const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
  if (n > 0) {
    received_.append(buffer, static_cast<size_t>(n));
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  peer_closed_ = true;  // EOF, or a reset (after any data that came before it)
  return false;
}

bool RawClient::send(std::string_view bytes, std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (!bytes.empty()) {
    pollfd fds{fd_.get(), POLLIN | POLLOUT, 0};
    const int ready = ::poll(&fds, 1, remaining_ms(until));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out_ = true;
      return false;
    }
    if ((fds.revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_once(0);
    if ((fds.revents & POLLOUT) != 0) {
      const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
    } else if (peer_closed_) {
      return false;
    }
  }
  return true;
}

void RawClient::shutdown_write() {
  ::shutdown(fd_.get(), SHUT_WR);
}

std::string RawClient::read_until_close(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (!peer_closed_) {
    const int left = remaining_ms(until);
    if (left == 0) {
      timed_out_ = true;
      break;
    }
    read_once(left);
  }
  return received_;
}

std::string RawClient::read_at_least(size_t n, std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (received_.size() < n && !peer_closed_) {
    const int left = remaining_ms(until);
    if (left == 0) {
      timed_out_ = true;
      break;
    }
    read_once(left);
  }
  return received_;
}

std::string RawClient::read_until(std::string_view marker, std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (received_.find(marker) == std::string::npos && !peer_closed_) {
    const int left = remaining_ms(until);
    if (left == 0) {
      timed_out_ = true;
      break;
    }
    read_once(left);
  }
  return received_;
}

std::string RawClient::take_received() {
  return std::exchange(received_, std::string());
}

}  // namespace egressd::test
