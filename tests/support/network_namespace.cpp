#include "tests/support/network_namespace.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "tests/support/process.h"

namespace egressd::test {
namespace {

[[noreturn]] void fail_errno(const std::string& what, int error) {
  throw std::runtime_error(what + ": " + std::strerror(error));
}

// Namespaces belong to threads: /proc/self would name the main thread's, whichever thread asks.
UniqueFd open_thread_namespace() {
  UniqueFd fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) fail_errno("open /proc/thread-self/ns/net", errno);
  return fd;
}

}  // namespace

NetworkNamespace::NetworkNamespace() {
  UniqueFd previous = open_thread_namespace();
  if (::unshare(CLONE_NEWNET) != 0) fail_errno("unshare(CLONE_NEWNET)", errno);
  fd_.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  const int open_error = errno;
  // unshare() moved this thread; it goes back before anything can throw.
  if (::setns(previous.get(), CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "setns back to the test's network namespace: %s\n", std::strerror(errno));
    std::abort();
  }
  if (!fd_.valid()) fail_errno("open the new network namespace", open_error);
  const Inside inside(*this);
  const RunResult up = run({"ip", "link", "set", "lo", "up"}, {.timeout = std::chrono::seconds(10)});
  if (up.exit_code != 0) throw std::runtime_error("ip link set lo up: " + up.err);
}

std::string NetworkNamespace::path() const {
  return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd_.get());
}

NetworkNamespace::Inside::Inside(const NetworkNamespace& ns) : previous_(open_thread_namespace()) {
  if (::setns(ns.fd_.get(), CLONE_NEWNET) != 0) fail_errno("setns into the test's network namespace", errno);
}

NetworkNamespace::Inside::~Inside() {
  if (::setns(previous_.get(), CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "setns back out of the test's network namespace: %s\n", std::strerror(errno));
    std::abort();
  }
}

}  // namespace egressd::test
