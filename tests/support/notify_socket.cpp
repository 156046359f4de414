#include "tests/support/notify_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <random>
#include <stdexcept>

namespace egressd::test {
namespace {

[[noreturn]] void fail_errno(const std::string& what, int error) {
  throw std::runtime_error(what + ": " + std::strerror(error));
}

}  // namespace

NotifySocket::NotifySocket(Namespace where) : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
  if (!fd_.valid()) fail_errno("socket(AF_UNIX, SOCK_DGRAM)", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socklen_t length = 0;
  if (where == Namespace::Path) {
    name_ = dir_.file("notify.sock");
    if (name_.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long: " + name_);
    std::memcpy(addr.sun_path, name_.c_str(), name_.size() + 1);
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + 1);
  } else {
    name_ =
        "@egressd-test-notify-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device()());
    std::memcpy(addr.sun_path, name_.data(), name_.size());
    addr.sun_path[0] = '\0';  // the abstract namespace: no file, the length says where the name ends
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
  }
  if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), length) != 0)
    fail_errno("bind " + name_, errno);
}

std::optional<std::string> NotifySocket::receive(std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    pollfd readable{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&readable, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) fail_errno("poll " + name_, errno);
    if (ready == 0) return std::nullopt;
    char buffer[65536];
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("recv " + name_, errno);
    return std::string(buffer, static_cast<size_t>(n));
  }
}

}  // namespace egressd::test
