// A network namespace of a test's own, with only loopback (up) in it: addresses a test adds exist only
// there, and no packet sent inside reaches the host's network. The calling thread works inside it while a
// NetworkNamespace::Inside lives, and every socket, thread and process it creates meanwhile belongs to the
// namespace (LocalOrigin, Egressd, run()). Needs CAP_SYS_ADMIN (tests run as root). Create, enter and leave
// it on the test's main thread. The namespace lasts until this object and every process started in it
// are gone.
#pragma once

#include <string>

#include "tests/support/unique_fd.h"

namespace egressd::test {

class NetworkNamespace {
 public:
  NetworkNamespace();  // throws std::runtime_error naming the step that failed
  NetworkNamespace(const NetworkNamespace&) = delete;
  NetworkNamespace& operator=(const NetworkNamespace&) = delete;

  // A path that names the namespace while this object lives, for `ip link set DEV netns PATH`.
  std::string path() const;

  // While it lives, the calling thread is inside `ns`; when it dies, the thread is back where it was
  // (aborting if it cannot: every later test would run in the wrong network). Must not outlive `ns`.
  class Inside {
   public:
    explicit Inside(const NetworkNamespace& ns);
    Inside(const Inside&) = delete;
    Inside& operator=(const Inside&) = delete;
    ~Inside();

   private:
    UniqueFd previous_;  // the thread's namespace before
  };

 private:
  UniqueFd fd_;  // /proc/thread-self/ns/net of the new namespace: keeps it alive
};

}  // namespace egressd::test
