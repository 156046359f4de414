// identify_peer() on real loopback connections this test opens: the socket's holders, their executable,
// and every way the lookup must fail closed.
#include "procid/identify.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "procid/socket_inode.h"
#include "tests/unit/procid/loopback.h"

namespace egressd::procid {
namespace {

using loopback::Child;
using loopback::Connection;
using loopback::OwnedFd;

PeerIdentity identify_or_fail(const TcpTuple& tuple) {
  auto identity = identify_peer(tuple);
  if (!identity) FAIL(identity.error().message());
  return std::move(identity).value();
}

LookupError failure_of(const TcpTuple& tuple) {
  auto identity = identify_peer(tuple);
  if (identity) FAIL("identified pid " << identity->pid << " (" << identity->exe << ") instead of failing");
  return std::move(identity).error();
}

void check_is_this_process(const PeerIdentity& identity, const Connection& connection) {
  CHECK(identity.exe == loopback::exe_of(::getpid()));
  CHECK(identity.pid == ::getpid());
  CHECK(identity.uid == ::getuid());
  CHECK(identity.socket_inode == loopback::inode_of(connection.client.get()));
  REQUIRE(identity.holders.size() == 1);
  CHECK(identity.holders[0].pid == ::getpid());
  CHECK(identity.holders[0].uid == ::getuid());
  CHECK_FALSE(identity.holders[0].exe_deleted);
}

TEST_CASE("a v4 client socket in this process is identified as this test binary") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  check_is_this_process(identify_or_fail(connection.tuple), connection);
}

TEST_CASE("a v6 client socket on ::1 in this process is identified as this test binary") {
  const auto listener = loopback::listen_on(AF_INET6, "::1");
  const Connection connection = loopback::connect_to(listener, AF_INET6, "::1");
  REQUIRE(connection.tuple.client_ip.family == 6);
  check_is_this_process(identify_or_fail(connection.tuple), connection);
}

TEST_CASE("an AF_INET6 client connected to ::ffff:127.0.0.1 is found from the plain v4 tuple") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection connection = loopback::connect_to(listener, AF_INET6, "::ffff:127.0.0.1");
  REQUIRE(connection.tuple.client_ip.family == 4);
  check_is_this_process(identify_or_fail(connection.tuple), connection);
}

TEST_CASE("a socket shared across fork has two holders running the same executable" * doctest::timeout(10)) {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  Child child = loopback::fork_holder();

  const PeerIdentity identity = identify_or_fail(connection.tuple);
  CHECK(identity.exe == loopback::exe_of(::getpid()));
  CHECK(identity.pid == ::getpid());  // started first
  std::vector<pid_t> pids;
  for (const PeerProcess& holder : identity.holders) pids.push_back(holder.pid);
  std::vector<pid_t> expected = {::getpid(), child.pid()};
  std::sort(expected.begin(), expected.end());
  CHECK(pids == expected);
}

TEST_CASE("a socket also held by a child that exec'd another binary is ambiguous" * doctest::timeout(10)) {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const std::string sleep = std::filesystem::canonical("/bin/sleep").string();
  Child child = loopback::spawn_holding(sleep, {"30"}, connection.client.get());

  const LookupError error = failure_of(connection.tuple);
  CHECK(error.stage == LookupError::Stage::Ambiguous);
  CAPTURE(error.detail);
  const std::string inode = std::to_string(loopback::inode_of(connection.client.get()));
  CHECK(error.detail.starts_with("ambiguous socket ownership: inode " + inode + " is held by pids ["));
  CHECK(error.detail.find(std::to_string(child.pid())) != std::string::npos);
  CHECK(error.detail.find(std::to_string(::getpid())) != std::string::npos);
  CHECK(error.detail.find("'" + sleep + "'") != std::string::npos);
  CHECK(error.detail.find("'" + loopback::exe_of(::getpid()) + "'") != std::string::npos);
  CHECK(error.message() == "caller unknown: " + error.detail);
}

TEST_CASE("the tuple of a connection whose client side was closed is not identified") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  connection.client.reset();

  const LookupError error = failure_of(connection.tuple);
  CAPTURE(error.detail);
  CHECK((error.stage == LookupError::Stage::NoSocket || error.stage == LookupError::Stage::NoHolder));
}

TEST_CASE("a socket whose only holder, a forked child, exited is not identified" * doctest::timeout(10)) {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  Child child = loopback::fork_holder();
  connection.client.reset();  // the child now holds the only copy
  CHECK(identify_or_fail(connection.tuple).pid == child.pid());
  REQUIRE(child.exit_and_reap() == 0);

  const LookupError error = failure_of(connection.tuple);
  CAPTURE(error.detail);
  CHECK((error.stage == LookupError::Stage::NoSocket || error.stage == LookupError::Stage::NoHolder));
}

TEST_CASE("a socket whose only descriptor is in flight over SCM_RIGHTS has no holder") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  const OwnedFd sender(pair[0]), receiver(pair[1]);
  char byte = 'x';
  iovec data{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  cmsghdr* rights = CMSG_FIRSTHDR(&message);
  rights->cmsg_level = SOL_SOCKET;
  rights->cmsg_type = SCM_RIGHTS;
  rights->cmsg_len = CMSG_LEN(sizeof(int));
  const int client_fd = connection.client.get();
  std::memcpy(CMSG_DATA(rights), &client_fd, sizeof client_fd);
  REQUIRE(::sendmsg(sender.get(), &message, 0) == 1);
  const uint64_t inode = loopback::inode_of(client_fd);
  connection.client.reset();  // now only the unread message on `receiver` keeps the socket alive

  const LookupError error = failure_of(connection.tuple);
  CHECK(error.stage == LookupError::Stage::NoHolder);
  CHECK(error.detail == "no process holds socket inode " + std::to_string(inode) +
                            " (the client exited or passed the descriptor on)");
}

TEST_CASE("a tuple with no socket behind it is NoSocket, naming the tuple") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  // A port that was free a moment ago: bound, then closed, so nothing uses it.
  uint16_t unused_port = 0;
  {
    const auto probe = loopback::listen_on(AF_INET, "127.0.0.1");
    unused_port = probe.port;
  }
  const uint8_t localhost[4] = {127, 0, 0, 1};
  const TcpTuple tuple{IpAddress::v4(localhost), unused_port, IpAddress::v4(localhost), listener.port};

  const LookupError error = failure_of(tuple);
  CHECK(error.stage == LookupError::Stage::NoSocket);
  CHECK(error.detail == "no TCP socket 127.0.0.1:" + std::to_string(unused_port) + " -> 127.0.0.1:" +
                            std::to_string(listener.port) + " (the client may have closed it)");
}

TEST_CASE("a tuple naming a listener's port as the client side is not resolved to the listener") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const uint8_t localhost[4] = {127, 0, 0, 1};
  const uint8_t elsewhere[4] = {127, 0, 0, 9};
  const TcpTuple tuple{IpAddress::v4(localhost), listener.port, IpAddress::v4(elsewhere), 54321};

  const LookupError error = failure_of(tuple);
  CAPTURE(error.detail);
  CHECK(error.stage == LookupError::Stage::NoSocket);
  // The kernel's exact lookup falls back to the listener (procid.md §2b); the reply check must see it.
  const auto diag = query_sock_diag(tuple);
  REQUIRE_FALSE(diag.has_value());
  CHECK(diag.error().detail.find("listening socket on 127.0.0.1:" + std::to_string(listener.port)) !=
        std::string::npos);
}

TEST_CASE("a holder running a deleted copy of a binary reports its path and exe_deleted" *
          doctest::timeout(10)) {
  const loopback::ScratchDir scratch;
  const std::string copy = scratch.path() + "/sleep";
  std::filesystem::copy_file("/bin/sleep", copy);
  std::filesystem::permissions(copy, std::filesystem::perms::owner_all);
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  Child child = loopback::spawn_holding(copy, {"30"}, connection.client.get());
  connection.client.reset();  // the spawned copy holds the only descriptor
  REQUIRE(std::filesystem::remove(copy));

  const PeerIdentity identity = identify_or_fail(connection.tuple);
  CHECK(identity.pid == child.pid());
  CHECK(identity.exe == copy);
  REQUIRE(identity.holders.size() == 1);
  CHECK(identity.holders[0].exe == copy);
  CHECK(identity.holders[0].exe_deleted);
}

TEST_CASE("the test process's parent is the nearest ancestor of its connections") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const std::string parent_exe = loopback::exe_of(::getppid());

  const PeerIdentity identity = identify_or_fail(connection.tuple);
  REQUIRE(identity.holders.size() == 1);
  const std::vector<Ancestor>& chain = identity.holders[0].ancestors;
  REQUIRE_FALSE(chain.empty());
  CHECK(chain.front().pid == ::getppid());
  CHECK(chain.front().exe == parent_exe);
  CHECK(chain.back().pid == 1);  // every process in a pid namespace descends from its pid 1
  REQUIRE_FALSE(identity.ancestors.empty());
  CHECK(identity.ancestors.front() == parent_exe);
}

TEST_CASE("identify_peers answers each connection of a batch as identify_peer would") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection mine = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const Connection handed = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const std::string sleep = std::filesystem::canonical("/bin/sleep").string();
  Child sleeper = loopback::spawn_holding(sleep, {"30"}, handed.client.get());
  Connection gone = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  gone.client.reset();
  gone.accepted.reset();  // both ends closed: no socket has that tuple any more
  const std::vector<TcpTuple> tuples{handed.tuple, gone.tuple, mine.tuple};
  const auto answers = identify_peers(tuples);
  REQUIRE(answers.size() == 3);
  // handed: this process and sleep hold it, two executables; the same answer as alone.
  REQUIRE_FALSE(answers[0].has_value());
  CHECK(answers[0].error().stage == LookupError::Stage::Ambiguous);
  CHECK(answers[0].error().detail == failure_of(handed.tuple).detail);
  REQUIRE_FALSE(answers[1].has_value());
  CHECK((answers[1].error().stage == LookupError::Stage::NoSocket ||
         answers[1].error().stage == LookupError::Stage::NoHolder));
  REQUIRE(answers[2].has_value());
  check_is_this_process(*answers[2], mine);
}

TEST_CASE("identify_peer answers lookups from several threads at once" * doctest::timeout(30)) {
  constexpr int kThreads = 4;
  constexpr int kLookupsPerThread = 10;
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  std::vector<Connection> connections;
  for (int i = 0; i < kThreads; ++i)
    connections.push_back(loopback::connect_to(listener, AF_INET, "127.0.0.1"));
  std::vector<std::vector<uint64_t>> inodes(kThreads);  // what each thread saw; checked on this thread
  {
    std::vector<std::jthread> workers;
    for (int i = 0; i < kThreads; ++i) {
      workers.emplace_back([&, i] {
        for (int n = 0; n < kLookupsPerThread; ++n) {
          const auto identity = identify_peer(connections[i].tuple);
          inodes[i].push_back(identity ? identity->socket_inode : 0);
        }
      });
    }
  }
  for (int i = 0; i < kThreads; ++i) {
    CAPTURE(i);
    const std::vector<uint64_t> want(kLookupsPerThread, loopback::inode_of(connections[i].client.get()));
    CHECK(inodes[i] == want);
  }
}

// identity_from_holders: the composition rule on its own, with made-up holders.

PeerProcess holder(pid_t pid, std::string exe, uint64_t start_time, std::vector<Ancestor> ancestors = {}) {
  PeerProcess process;
  process.pid = pid;
  process.exe = std::move(exe);
  process.start_time = start_time;
  process.ancestors = std::move(ancestors);
  return process;
}

TEST_CASE("the identity's pid is the holder that started first, the lower pid on a tie") {
  struct Row {
    uint64_t start_a, start_b;
    pid_t want;
  };
  const Row rows[] = {{100, 200, 30}, {200, 100, 20}, {100, 100, 20}};
  for (const Row& row : rows) {
    CAPTURE(row.start_a);
    CAPTURE(row.start_b);
    auto identity = identity_from_holders(
        7, 1000, {holder(30, "/bin/x", row.start_a), holder(20, "/bin/x", row.start_b)});
    REQUIRE(identity.has_value());
    CHECK(identity->pid == row.want);
    CHECK(identity->uid == 1000);
    CHECK(identity->socket_inode == 7);
    REQUIRE(identity->holders.size() == 2);
    CHECK(identity->holders[0].pid == 20);  // sorted by pid
  }
}

TEST_CASE("identity ancestors are the exes every holder descends from, nearest first") {
  // pid 10 forked 11: 11's chain starts with 10's own exe, which 10's chain does not contain.
  const auto identity = identity_from_holders(
      7, 0,
      {holder(11, "/bin/agent", 2,
              {{10, "/bin/agent"}, {5, "/bin/bash"}, {4, ""}, {3, "/bin/bash"}, {1, "/sbin/init"}}),
       holder(10, "/bin/agent", 1, {{5, "/bin/bash"}, {4, ""}, {1, "/sbin/init"}})});
  REQUIRE(identity.has_value());
  CHECK(identity->ancestors == std::vector<std::string>{"/bin/bash", "/sbin/init"});
}

TEST_CASE("holders running the same path where one image is deleted are ambiguous") {
  PeerProcess replaced = holder(20, "/usr/bin/agent", 1);
  replaced.exe_deleted = true;
  const auto identity = identity_from_holders(7, 0, {holder(21, "/usr/bin/agent", 2), replaced});
  REQUIRE_FALSE(identity.has_value());
  CHECK(identity.error().stage == LookupError::Stage::Ambiguous);
  CHECK(identity.error().detail ==
        "ambiguous socket ownership: inode 7 is held by pids [20, 21] running different executables "
        "['/usr/bin/agent (deleted)', '/usr/bin/agent']");
}

}  // namespace
}  // namespace egressd::procid
