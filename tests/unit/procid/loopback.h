// Real loopback connections, forked holders and spawned programs for procid's unit tests. Every resource
// is owned: descriptors close and children are killed and reaped when their owner dies. Children are
// plain fork() (no threads in the test process), so between fork and exec they only make syscalls.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "tests/support/temp_dir.h"

#include "procid/peer.h"

namespace egressd::procid::loopback {

// Sole owner of one file descriptor.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { reset(); }

  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

inline IpAddress address_of(const sockaddr_storage& storage) {
  if (storage.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
    uint8_t bytes[4];
    std::memcpy(bytes, &in.sin_addr, sizeof bytes);
    return IpAddress::v4(bytes);
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
  uint8_t bytes[16];
  std::memcpy(bytes, &in6.sin6_addr, sizeof bytes);
  return IpAddress::v6(bytes);
}

inline uint16_t port_of(const sockaddr_storage& storage) {
  return ntohs(storage.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(storage).sin_port
                                            : reinterpret_cast<const sockaddr_in6&>(storage).sin6_port);
}

// "127.0.0.1" / "::1" / "::ffff:127.0.0.1" with a port, as a sockaddr of the given family.
inline socklen_t make_sockaddr(int family, const char* address, uint16_t port, sockaddr_storage& storage) {
  storage = {};
  if (family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(storage);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    REQUIRE(inet_pton(AF_INET, address, &in.sin_addr) == 1);
    return sizeof in;
  }
  auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  REQUIRE(inet_pton(AF_INET6, address, &in6.sin6_addr) == 1);
  return sizeof in6;
}

// The tuple egressd would see on its accepted socket: client = getpeername, proxy = getsockname.
inline TcpTuple tuple_of(int accepted_fd) {
  sockaddr_storage peer{}, local{};
  socklen_t peer_len = sizeof peer, local_len = sizeof local;
  REQUIRE(::getpeername(accepted_fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0);
  REQUIRE(::getsockname(accepted_fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0);
  return TcpTuple{address_of(peer), port_of(peer), address_of(local), port_of(local)};
}

inline uint16_t local_port(int fd) {
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0);
  return port_of(local);
}

struct Listener {
  OwnedFd fd;
  int family = AF_INET;
  uint16_t port = 0;
};

inline Listener listen_on(int family, const char* address) {
  Listener listener;
  listener.family = family;
  listener.fd.reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(listener.fd.get() >= 0);
  sockaddr_storage storage;
  const socklen_t len = make_sockaddr(family, address, 0, storage);
  REQUIRE(::bind(listener.fd.get(), reinterpret_cast<const sockaddr*>(&storage), len) == 0);
  REQUIRE(::listen(listener.fd.get(), 8) == 0);
  listener.port = local_port(listener.fd.get());
  return listener;
}

struct Connection {
  OwnedFd client;    // the socket procid must attribute
  OwnedFd accepted;  // egressd's side
  TcpTuple tuple;    // as seen from `accepted`
};

// A client socket of `client_family` connected to `address`:listener.port, and the accepted side.
inline Connection connect_to(const Listener& listener, int client_family, const char* address) {
  Connection connection;
  connection.client.reset(::socket(client_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(connection.client.get() >= 0);
  if (client_family == AF_INET6) {
    const int v6_only = 0;  // so that ::ffff:a.b.c.d can reach an IPv4 listener
    REQUIRE(::setsockopt(connection.client.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, sizeof v6_only) == 0);
  }
  sockaddr_storage storage;
  const socklen_t len = make_sockaddr(client_family, address, listener.port, storage);
  REQUIRE(::connect(connection.client.get(), reinterpret_cast<const sockaddr*>(&storage), len) == 0);
  connection.accepted.reset(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(connection.accepted.get() >= 0);
  connection.tuple = tuple_of(connection.accepted.get());
  return connection;
}

inline uint64_t inode_of(int fd) {
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  return st.st_ino;
}

// A forked or spawned child, killed (SIGKILL) and reaped when the owner dies.
class Child {
 public:
  Child() = default;
  Child(pid_t pid, OwnedFd release) : pid_(pid), release_(std::move(release)) {}
  Child(Child&& other) noexcept : pid_(std::exchange(other.pid_, -1)), release_(std::move(other.release_)) {}
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  pid_t pid() const { return pid_; }

  // Lets a forked child leave on its own (closes the pipe it waits on) and reaps it: its exit status.
  int exit_and_reap() {
    release_.reset();
    int status = 0;
    pid_t reaped;
    do reaped = ::waitpid(pid_, &status, 0);
    while (reaped < 0 && errno == EINTR);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  void stop() {
    release_.reset();
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  OwnedFd release_;  // write end of the pipe a forked child blocks on; closing it lets the child exit
};

// A copy of this process (same exe, every descriptor shared) that blocks until released or stopped.
inline Child fork_holder() {
  int release[2];
  REQUIRE(::pipe2(release, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(release[1]);
    char byte;
    while (::read(release[0], &byte, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);
  }
  ::close(release[0]);
  return Child(pid, OwnedFd(release[1]));
}

// fork + execv(path, argv) with `inherited_fd` kept open across exec. Returns once the exec happened
// (a close-on-exec pipe reaches EOF), so /proc/PID/exe already names the new program.
inline Child spawn_holding(const std::string& path, const std::vector<std::string>& args, int inherited_fd) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  int exec_done[2];
  REQUIRE(::pipe2(exec_done, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(exec_done[0]);
    ::fcntl(inherited_fd, F_SETFD, 0);
    ::execv(path.c_str(), argv.data());
    const int error = errno;
    (void)!::write(exec_done[1], &error, sizeof error);
    ::_exit(127);
  }
  ::close(exec_done[1]);
  OwnedFd exec_pipe(exec_done[0]);
  Child child(pid, OwnedFd());
  pollfd ready{exec_pipe.get(), POLLIN, 0};
  REQUIRE_MESSAGE(::poll(&ready, 1, 10'000) == 1, "the child did not exec within 10 s");
  int exec_errno = 0;
  const ssize_t n = ::read(exec_pipe.get(), &exec_errno, sizeof exec_errno);
  REQUIRE_MESSAGE(n == 0, "execv(" << path << ") failed: " << std::strerror(exec_errno));
  return child;
}

// A private directory under /tmp, removed with its contents when this dies.
using ScratchDir = test::TempDir;

inline std::string exe_of(pid_t pid) {
  std::error_code error;
  const auto target = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error);
  REQUIRE_MESSAGE(!error, "readlink /proc/" << pid << "/exe: " << error.message());
  return target.string();
}

}  // namespace egressd::procid::loopback
