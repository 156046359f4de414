// The server on a real loop, with real sockets, and a stand-in for caller identification so that a
// test can hold one identification back. Every test ends with uv_loop_close() == 0.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "policy/loader.h"
#include "policy/store.h"
#include "proxy/decision_log.h"
#include "proxy/server.h"
#include "proxy/settings.h"
#include "tests/support/temp_dir.h"
#include "tls/ca.h"

using namespace egressd;
using namespace std::chrono_literals;

namespace {

const char* const kPolicy = R"(version: 1
network_policies:
  test:
    endpoints: [{ host: 127.0.0.1, port: 9 }]
    binaries: [{ path: /usr/bin/allowed }]
)";

// Blocking client helpers (run on client threads, never on the loop thread).
int connect_to(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string exchange(uint16_t port, const std::string& request) {
  const int fd = connect_to(port);
  if (fd < 0) return "connect failed";
  (void)!::write(fd, request.data(), request.size());
  std::string reply = read_all(fd);
  ::close(fd);
  return reply;
}

// A server on its own loop; `clients` runs on a thread, then the server stops and the loop drains.
struct Harness {
  explicit Harness(std::function<proxy::IdentifyAnswer(const procid::TcpTuple&)> identify) {
    auto loaded = policy::load_policy_text(kPolicy, "test.yaml");
    REQUIRE(loaded.has_value());
    store = std::make_unique<policy::PolicyStore>("", *loaded);
    settings.listen_port = 0;
    REQUIRE(uv_loop_init(&loop) == 0);
    auto ca = tls::CertificateAuthority::generate(ca_dir.file("ca"), "server_test CA");
    REQUIRE(ca.has_value());
    auto upstream = tls::UpstreamTls::create("");
    REQUIRE(upstream.has_value());
    interception = std::make_unique<proxy::Interception>(*ca, *upstream);
    server =
        std::make_unique<proxy::Server>(&loop, settings, *store, deny_log, access_log,
                                        proxy::one_at_a_time(std::move(identify)), *interception, redirects);
    REQUIRE(server->listen().has_value());
    const auto address = server->bound_address();
    port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  }

  // Runs the loop until `clients` returns; then stops the server and checks that the loop closes.
  void run(std::function<void()> clients) {
    uv_async_t done{};
    done.data = server.get();
    REQUIRE(uv_async_init(&loop, &done, [](uv_async_t* async) {
              static_cast<proxy::Server*>(async->data)->stop();
              uv_close(reinterpret_cast<uv_handle_t*>(async), nullptr);
            }) == 0);
    std::thread client_thread([&] {
      clients();
      uv_async_send(&done);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    client_thread.join();
    live_after_stop = server->live_sessions();
    server.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }

  uv_loop_t loop{};
  proxy::Settings settings;
  std::unique_ptr<policy::PolicyStore> store;
  proxy::DecisionLog deny_log;
  proxy::DecisionLog access_log;
  test::TempDir ca_dir;
  std::unique_ptr<proxy::Interception> interception;
  proxy::RedirectMemory redirects;
  std::unique_ptr<proxy::Server> server;
  uint16_t port = 0;
  size_t live_after_stop = 0;
};

procid::PeerIdentity identity_of(const std::string& exe) {
  procid::PeerIdentity who;
  who.exe = exe;
  who.pid = 4242;
  return who;
}

}  // namespace

TEST_CASE("one slow caller identification does not hold up other connections" * doctest::timeout(30)) {
  std::mutex mutex;
  std::condition_variable released_cv;
  bool released = false;
  std::atomic<uint16_t> slow_port{0};
  Harness harness([&](const procid::TcpTuple& tuple) -> Result<procid::PeerIdentity, procid::LookupError> {
    if (tuple.client_port == slow_port.load()) {  // this one is stuck in /proc, as it were
      std::unique_lock lock(mutex);
      released_cv.wait_for(lock, 10s, [&] { return released; });
    }
    return identity_of("/usr/bin/denied");
  });

  std::string fast_reply;
  std::string slow_reply;
  bool slow_was_still_waiting = false;
  harness.run([&] {
    const int slow_fd = connect_to(harness.port);
    REQUIRE(slow_fd >= 0);
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ::getsockname(slow_fd, reinterpret_cast<sockaddr*>(&local), &len);
    slow_port = ntohs(local.sin_port);
    // The slow connection was accepted before slow_port was set only if the loop is very quick;
    // send the request now: its identification will block until released.
    const std::string request = "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n";
    (void)!::write(slow_fd, request.data(), request.size());

    const auto started = std::chrono::steady_clock::now();
    fast_reply = exchange(harness.port, request);
    const auto fast_took = std::chrono::steady_clock::now() - started;
    CHECK(fast_took < 5s);
    {
      std::lock_guard lock(mutex);
      slow_was_still_waiting = !released;
      released = true;
    }
    released_cv.notify_all();
    slow_reply = read_all(slow_fd);
    ::close(slow_fd);
  });
  CHECK(fast_reply.starts_with("HTTP/1.1 403 Forbidden\r\n"));
  CHECK(slow_was_still_waiting);
  CHECK(slow_reply.starts_with("HTTP/1.1 403 Forbidden\r\n"));
  CHECK(harness.live_after_stop == 0);
}

TEST_CASE("a failed identification denies with the lookup's reason and never dials" * doctest::timeout(30)) {
  Harness harness([](const procid::TcpTuple&) -> Result<procid::PeerIdentity, procid::LookupError> {
    return unexpected(
        procid::LookupError{procid::LookupError::Stage::NoHolder, 0, 0, "no process holds socket inode 77"});
  });
  std::string reply;
  harness.run([&] { reply = exchange(harness.port, "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: x\r\n\r\n"); });
  CHECK(reply.starts_with("HTTP/1.1 403 Forbidden\r\n"));
  CHECK(reply.find("\"reason\":\"caller unknown: no process holds socket inode 77\"") != std::string::npos);
  CHECK(reply.find("\"binary\":null") != std::string::npos);
}

TEST_CASE("clients that vanish mid-head, mid-identification or after a partial body leave no session behind" *
          doctest::timeout(30)) {
  Harness harness([](const procid::TcpTuple&) -> Result<procid::PeerIdentity, procid::LookupError> {
    return identity_of("/usr/bin/allowed");
  });
  harness.run([&] {
    for (const char* partial : {"CONNECT 127.0.0.1:9 HTT", "GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: a\r\n",
                                "POST http://127.0.0.1:9/ HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", ""}) {
      const int fd = connect_to(harness.port);
      REQUIRE(fd >= 0);
      (void)!::write(fd, partial, std::strlen(partial));
      ::close(fd);
    }
    // A full request afterwards still gets its answer: the loop is healthy.
    const std::string reply = exchange(harness.port, "GET https://127.0.0.1:9/ HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"));
  });
  CHECK(harness.live_after_stop == 0);
}

TEST_CASE("an allowed CONNECT to a closed port gets 502 naming the connect error" * doctest::timeout(30)) {
  Harness harness([](const procid::TcpTuple&) -> Result<procid::PeerIdentity, procid::LookupError> {
    return identity_of("/usr/bin/allowed");
  });
  std::string reply;
  harness.run(
      [&] { reply = exchange(harness.port, "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"); });
  CHECK(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
  CHECK(reply.find("connection refused") != std::string::npos);
}
