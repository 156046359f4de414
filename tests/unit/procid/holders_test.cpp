// Socket inode -> holders: the /proc walk on real sockets, its fail-closed rule, and the /proc parsers.
#include "procid/holders.h"

#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "tests/unit/procid/loopback.h"

namespace egressd::procid {
namespace {

using loopback::Connection;
using loopback::OwnedFd;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `scan` in a forked child that became nobody (leaving uid 0 clears the permitted and effective
// capability sets) and returns the line it reported.
template <typename Scan>
std::string as_nobody(Scan scan) {
  int report[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(report[0]);
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
        ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(2);
    }
    const std::string line = scan();
    (void)!::write(report[1], line.data(), line.size());
    ::_exit(0);
  }
  ::close(report[1]);
  loopback::Child child(pid, OwnedFd());
  const OwnedFd reader(report[0]);
  std::string line;
  char chunk[512];
  for (;;) {
    pollfd ready{reader.get(), POLLIN, 0};
    REQUIRE_MESSAGE(::poll(&ready, 1, 10'000) == 1, "the unprivileged scan did not finish within 10 s");
    const ssize_t n = ::read(reader.get(), chunk, sizeof chunk);
    REQUIRE(n >= 0);
    if (n == 0) break;
    line.append(chunk, static_cast<size_t>(n));
  }
  REQUIRE(child.exit_and_reap() == 0);
  return line;
}

TEST_CASE("the start time is field 22 even when comm holds spaces and parentheses") {
  const std::string stat =
      "4218 (a) b (c) ) R 4214 4214 2751 0 -1 4194304 103 0 0 0 0 0 0 0 20 0 1 0 629272 3133440 401 "
      "18446744073709551615 94261002825728 0\n";
  CHECK(parse_stat_start_time(stat) == 629272);
  CHECK_FALSE(parse_stat_start_time("4218 (cat) R 4214 4214").has_value());
  CHECK_FALSE(parse_stat_start_time("4218 cat R").has_value());
}

TEST_CASE("status parsing takes the real uid, the parent pid and the capability masks") {
  const std::string status =
      "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t4218\nPid:\t4218\nPPid:\t4214\n"
      "Uid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n"
      "CapEff:\t0000000000080004\nCapBnd:\t000001fffeffffff\n";
  const auto parsed = parse_status(status);
  REQUIRE(parsed.has_value());
  CHECK(parsed->uid == 1000);
  CHECK(parsed->ppid == 4214);
  CHECK(parsed->cap_permitted == 0x1ffffffffffULL);
  CHECK(parsed->cap_effective == 0x80004ULL);
  CHECK(parsed->cap_bounding == 0x1fffeffffffULL);
  CHECK_FALSE(parse_status("Name:\tcat\nPPid:\t1\n").has_value());
}

TEST_CASE("only a process holding capabilities outside our bounding set may stay unread") {
  constexpr uint64_t kInspect = (1ULL << CAP_SYS_PTRACE) | (1ULL << CAP_DAC_READ_SEARCH);
  constexpr uint64_t kSysResource = 1ULL << CAP_SYS_RESOURCE;
  const uint64_t all = 0x1ffffffffffULL;
  struct Row {
    const char* what;
    uint64_t self_effective, self_bounding, process_permitted;
    bool want;
  };
  const Row rows[] = {
      {"sandbox init with a capability we can never hold", all & ~kSysResource, all & ~kSysResource, all,
       true},
      {"a process no more privileged than us", all & ~kSysResource, all & ~kSysResource, 0, false},
      {"a root process while we lack CAP_SYS_PTRACE", kInspect & ~(1ULL << CAP_SYS_PTRACE), 0, all, false},
      {"an unprivileged scanner", 0, 0, all, false},
      {"same privileges as ours", all, all, all, false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.what);
    ProcessStatus self, process;
    self.cap_effective = row.self_effective;
    self.cap_bounding = row.self_bounding;
    process.cap_permitted = row.process_permitted;
    CHECK(beyond_reach(self, process) == row.want);
  }
}

TEST_CASE("the only holder of a socket this process opened is this process") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const auto holders = find_holders(loopback::inode_of(connection.client.get()));
  if (!holders) FAIL(holders.error().message());
  REQUIRE(holders->size() == 1);
  const PeerProcess& self = holders->front();
  CHECK(self.pid == ::getpid());
  CHECK(self.uid == ::getuid());
  CHECK(self.exe == loopback::exe_of(::getpid()));
  CHECK(self.start_time == parse_stat_start_time(read_text("/proc/self/stat")));
}

TEST_CASE("a socket nobody holds any more has no holder") {
  uint64_t inode = 0;
  {
    const OwnedFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(socket.get() >= 0);
    inode = loopback::inode_of(socket.get());
  }
  const auto holders = find_holders(inode);
  REQUIRE_FALSE(holders.has_value());
  CHECK(holders.error().stage == LookupError::Stage::NoHolder);
  CHECK(holders.error().detail == "no process holds socket inode " + std::to_string(inode) +
                                      " (the client exited or passed the descriptor on)");
}

TEST_CASE("a scanner without CAP_SYS_PTRACE fails closed on processes it cannot inspect" *
          doctest::timeout(10)) {
  // Whichever scanning thread meets the unreadable process, the whole scan fails.
  for (const unsigned threads : {1u, kMaxScanThreads}) {
    CAPTURE(threads);
    const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
    const Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
    const uint64_t inode = loopback::inode_of(connection.client.get());
    const std::string line = as_nobody([&] {
      const auto holders = find_holders(inode, threads);
      return holders ? "found"
                     : std::to_string(static_cast<int>(holders.error().stage)) + " " + holders.error().detail;
    });
    CAPTURE(line);
    const std::string permission = std::to_string(static_cast<int>(LookupError::Stage::Permission)) + " ";
    CHECK(line.starts_with(permission + "cannot inspect /proc/"));
    CHECK(line.ends_with("/fd (permission denied); egressd needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"));
  }
}

TEST_CASE("the scan finds every one of many holders, with one thread and with several" *
          doctest::timeout(30)) {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const uint64_t inode = loopback::inode_of(connection.client.get());
  // Enough holders to fill many of the chunks the threads take in turn.
  std::vector<loopback::Child> children;
  for (int i = 0; i < 80; ++i) children.push_back(loopback::fork_holder());
  std::vector<pid_t> want{::getpid()};
  for (const loopback::Child& child : children) want.push_back(child.pid());
  std::sort(want.begin(), want.end());
  for (const unsigned threads : {1u, 2u, kMaxScanThreads}) {
    CAPTURE(threads);
    const auto holders = find_holders(inode, threads);
    if (!holders) FAIL(holders.error().message());
    std::vector<pid_t> pids;
    for (const PeerProcess& holder : *holders) pids.push_back(holder.pid);
    CHECK(pids == want);
  }
}

TEST_CASE("one pass answers several sockets, each with exactly its own holders" * doctest::timeout(30)) {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  // A: this process and a fork of it. B: this process and a /bin/sleep it was handed to. C: nobody.
  const Connection a = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  loopback::Child fork_of_a = loopback::fork_holder();
  const Connection b = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  loopback::Child sleep_with_b = loopback::spawn_holding("/bin/sleep", {"30"}, b.client.get());
  uint64_t c = 0;
  {
    const OwnedFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(socket.get() >= 0);
    c = loopback::inode_of(socket.get());
  }
  const uint64_t inode_a = loopback::inode_of(a.client.get());
  const uint64_t inode_b = loopback::inode_of(b.client.get());
  const auto pids_of = [](const std::vector<PeerProcess>& holders) {
    std::vector<pid_t> pids;
    for (const PeerProcess& holder : holders) pids.push_back(holder.pid);
    return pids;
  };
  const auto sorted = [](std::vector<pid_t> pids) {
    std::sort(pids.begin(), pids.end());
    return pids;
  };
  for (const unsigned threads : {1u, kMaxScanThreads}) {
    CAPTURE(threads);
    // B twice: a connection may be asked about twice and is answered twice.
    const std::vector<uint64_t> inodes{inode_b, c, inode_a, inode_b};
    const auto answers = find_holders_of(inodes, threads);
    REQUIRE(answers.size() == inodes.size());
    REQUIRE(answers[0].has_value());
    CHECK(pids_of(*answers[0]) == sorted({::getpid(), sleep_with_b.pid()}));
    CHECK(answers[0]->back().exe == loopback::exe_of(sleep_with_b.pid()));
    REQUIRE_FALSE(answers[1].has_value());
    CHECK(answers[1].error().stage == LookupError::Stage::NoHolder);
    CHECK(answers[1].error().detail.find("inode " + std::to_string(c) + " ") != std::string::npos);
    REQUIRE(answers[2].has_value());
    CHECK(pids_of(*answers[2]) == sorted({::getpid(), fork_of_a.pid()}));
    REQUIRE(answers[3].has_value());
    CHECK(pids_of(*answers[3]) == pids_of(*answers[0]));
    // The same as asking one at a time.
    for (size_t i : {size_t{0}, size_t{2}}) {
      const auto alone = find_holders(inodes[i], threads);
      REQUIRE(alone.has_value());
      CHECK(pids_of(*alone) == pids_of(*answers[i]));
    }
  }
}

TEST_CASE("a process the batch cannot read fails every socket in it" * doctest::timeout(10)) {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection a = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const Connection b = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const std::vector<uint64_t> inodes{loopback::inode_of(a.client.get()), loopback::inode_of(b.client.get())};
  const std::string line = as_nobody([&] {
    std::string answers;
    for (const auto& answer : find_holders_of(inodes, kMaxScanThreads)) {
      answers += answer ? "found;" : std::to_string(static_cast<int>(answer.error().stage)) + ";";
    }
    return answers;
  });
  const std::string permission = std::to_string(static_cast<int>(LookupError::Stage::Permission)) + ";";
  CHECK(line == permission + permission);
}

}  // namespace
}  // namespace egressd::procid
