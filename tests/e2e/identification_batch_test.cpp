// Caller identification in bursts: connections that arrive while a /proc pass runs share the next pass,
// and each is still told apart (its own holders, its own verdict).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_tcp_echo.h"
#include "tests/support/policy_yaml.h"
#include "tests/support/raw_client.h"

namespace egressd::test::e2e {
namespace {

// `count` forks of this process that each open `fds` descriptors and wait to be killed: a /proc that
// takes a while to walk, as on a machine with many processes. Killed and reaped on destruction.
class Idlers {
 public:
  Idlers(int count, int fds) {
    int ready[2];
    REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
    for (int i = 0; i < count; ++i) {
      const pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(ready[0]);
        for (int fd = 0; fd < fds; ++fd) (void)::open("/dev/null", O_RDONLY);
        (void)!::write(ready[1], "x", 1);
        for (;;) ::pause();
      }
      pids_.push_back(pid);
    }
    ::close(ready[1]);
    int started = 0;
    char buffer[256];
    while (started < count) {  // every idler has opened its descriptors
      const ssize_t n = ::read(ready[0], buffer, sizeof buffer);
      if (n <= 0) break;
      started += static_cast<int>(n);
    }
    ::close(ready[0]);
    REQUIRE(started == count);
  }
  Idlers(const Idlers&) = delete;
  Idlers& operator=(const Idlers&) = delete;
  ~Idlers() {
    for (const pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (const pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
  }

 private:
  std::vector<pid_t> pids_;
};

std::optional<double> sample(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::stod(metrics.substr(at + name.size() + 2));
}

TEST_CASE("a burst of connections is identified by a few shared /proc passes, each caller on its own" *
          doctest::timeout(120)) {
  constexpr int kConnections = 24;
  LocalTcpEcho allowed_echo;
  LocalTcpEcho other_echo;
  Egressd egressd(policy_allowing(self_exe(), "127.0.0.1", allowed_echo.port()),
                  {"--metrics", "127.0.0.1:0"});
  INFO(egressd.diagnostics());
  const std::string address = metrics_address(egressd);
  // Enough processes that one pass takes far longer than opening every connection below.
  const Idlers idlers(400, 20);

  // Every third connection asks for a port the policy does not name: one pass decides both kinds.
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(std::make_unique<RawClient>("127.0.0.1", egressd.port()));
    const std::string& target = i % 3 == 2 ? other_echo.host_port() : allowed_echo.host_port();
    REQUIRE(clients.back()->send(connect_request(target)));
  }
  for (int i = 0; i < kConnections; ++i) {
    CAPTURE(i);
    const std::string head = clients[static_cast<size_t>(i)]->read_until("\r\n\r\n", 60s);
    CHECK(head.starts_with(i % 3 == 2 ? "HTTP/1.1 403 " : "HTTP/1.1 200 "));
  }

  const RunResult scraped = run({curl(), "-q", "-sS", "--noproxy", "*", "http://" + address + "/metrics"});
  REQUIRE(scraped.exit_code == 0);
  const auto scans = sample(scraped.out, "egressd_identification_scans_total");
  const auto scanned = sample(scraped.out, "egressd_identification_scanned_connections_total");
  REQUIRE(scans.has_value());
  REQUIRE(scanned.has_value());
  CHECK(*scanned == kConnections);
  CHECK(sample(scraped.out, "egressd_identification_failures_total") == 0);
  // One pass per connection would be 24. The first two start at once (two may run together); the rest
  // wait and are shared by the passes after them.
  MESSAGE("identification passes for ", kConnections, " connections: ", *scans);
  CHECK(*scans <= kConnections / 3);
}

}  // namespace
}  // namespace egressd::test::e2e
