#include "proxy/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "common/log.h"

namespace egressd::proxy {
namespace {

std::string policy_summary(const policy::Policy& policy) {
  return fmt::format("hash={} rules={} from {}", policy.source_hash, policy.rules.size(), policy.source_path);
}

}  // namespace

Result<void, std::string> send_notify_datagram(std::string_view socket_name, std::string_view message) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socklen_t addr_len = 0;
  if (socket_name.size() < 2 || (socket_name.front() != '/' && socket_name.front() != '@')) {
    return unexpected(
        fmt::format("NOTIFY_SOCKET '{}' is neither an absolute path nor '@' and a name", socket_name));
  }
  // A path needs its NUL within sun_path; an abstract name has none (its length is in addr_len).
  if (socket_name.size() + (socket_name.front() == '/' ? 1 : 0) > sizeof addr.sun_path) {
    return unexpected(fmt::format("NOTIFY_SOCKET '{}' is longer than a socket address", socket_name));
  }
  std::memcpy(addr.sun_path, socket_name.data(), socket_name.size());
  addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_name.size());
  if (socket_name.front() == '@') {
    addr.sun_path[0] = '\0';
  } else {
    addr_len += 1;
  }

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return unexpected(fmt::format("socket(AF_UNIX): {}", std::strerror(errno)));
  const ssize_t sent = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&addr), addr_len);
  const int error = errno;
  ::close(fd);
  if (sent < 0) return unexpected(fmt::format("sendto {}: {}", socket_name, std::strerror(error)));
  if (static_cast<size_t>(sent) != message.size()) {
    return unexpected(fmt::format("sendto {}: sent {} of {} bytes", socket_name, sent, message.size()));
  }
  return {};
}

std::string status_text(std::string_view text) {
  size_t end = std::min(text.size(), kMaxStatusBytes);
  // Cut before a character, never inside one: back off while the first byte left out continues a
  // UTF-8 sequence (10xxxxxx).
  while (end > 0 && end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  std::string out(text.substr(0, end));
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

uint64_t monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1'000;
}

SystemdNotifier SystemdNotifier::from_environment() {
  // egressd starts no children, so NOTIFY_SOCKET may stay in its environment.
  const char* name = std::getenv("NOTIFY_SOCKET");
  return SystemdNotifier(name != nullptr ? name : "");
}

void SystemdNotifier::ready(const std::string& address, const policy::Policy& policy) {
  address_ = address;
  send("READY=1\nSTATUS=" +
       status_text(fmt::format("listening on {}; policy {}", address_, policy_summary(policy))));
}

void SystemdNotifier::on_reload_started() {
  send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the policy", monotonic_usec()));
}

void SystemdNotifier::on_reload_finished(const policy::ReloadResult& result, const policy::Policy& in_force) {
  std::string status;
  switch (result.kind) {
    case policy::ReloadResult::Kind::Applied:
      status = fmt::format("listening on {}; policy reloaded: {}", address_, policy_summary(in_force));
      break;
    case policy::ReloadResult::Kind::Unchanged:
      status = fmt::format("listening on {}; policy unchanged: {}", address_, policy_summary(in_force));
      break;
    case policy::ReloadResult::Kind::Rejected:
      status = fmt::format(
          "listening on {}; new policy rejected, last good kept ({}): {}", address_, policy_summary(in_force),
          result.errors.empty() ? std::string("unknown error") : result.errors.front().to_string());
      break;
  }
  send("READY=1\nSTATUS=" + status_text(status));
}

void SystemdNotifier::stopping(std::string_view why) {
  send("STOPPING=1\nSTATUS=" + status_text(fmt::format("stopping ({})", why)));
}

void SystemdNotifier::send(const std::string& message) {
  if (!enabled()) return;
  if (auto sent = send_notify_datagram(socket_name_, message); !sent) {
    log::warn("cannot tell systemd '{}': {}", message.substr(0, message.find('\n')), sent.error());
  }
}

}  // namespace egressd::proxy
