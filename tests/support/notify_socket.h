// A stand-in for systemd's notification socket ($NOTIFY_SOCKET): an AF_UNIX datagram socket bound to a
// path in its own TempDir, or to a name in the abstract namespace, whose datagrams a test reads one at
// a time, each wait bounded by a deadline. Failures to set it up throw std::runtime_error.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "tests/support/temp_dir.h"
#include "tests/support/unique_fd.h"

namespace egressd::test {

class NotifySocket {
 public:
  enum class Namespace { Path, Abstract };
  explicit NotifySocket(Namespace where = Namespace::Path);

  // What NOTIFY_SOCKET is set to: the socket's path, or '@' and its abstract name.
  const std::string& name() const { return name_; }
  std::string env() const { return "NOTIFY_SOCKET=" + name_; }
  // The next datagram, or nothing once `deadline` has passed without one.
  std::optional<std::string> receive(std::chrono::milliseconds deadline);

 private:
  TempDir dir_;
  UniqueFd fd_;
  std::string name_;
};

}  // namespace egressd::test
