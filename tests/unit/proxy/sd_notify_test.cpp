// The sd_notify(3) protocol as egressd speaks it, to a socket the test binds: path and abstract-namespace
// addresses, the messages for start, reload and stop, and STATUS lines that systemd will accept.
#include <doctest/doctest.h>
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <optional>
#include <string>

#include "policy/loader.h"
#include "policy/store.h"
#include "proxy/sd_notify.h"
#include "tests/support/notify_socket.h"

using namespace egressd;
using namespace std::chrono_literals;
using proxy::kMaxStatusBytes;
using proxy::send_notify_datagram;
using proxy::status_text;
using proxy::SystemdNotifier;
using test::NotifySocket;

namespace {

std::shared_ptr<const policy::Policy> test_policy() {
  auto loaded = policy::load_policy_text(R"(version: 1
network_policies:
  a: { endpoints: [{ host: a.example, port: 443 }], binaries: [{ path: /usr/bin/curl }] }
  b: { endpoints: [{ host: b.example, port: 443 }], binaries: [{ path: /usr/bin/git }] }
)",
                                         "/etc/egressd/policy.yaml");
  REQUIRE(loaded);
  return *loaded;
}

uint64_t monotonic_now_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1'000;
}

}  // namespace

TEST_CASE("a notification reaches a socket bound to a path") {
  NotifySocket socket(NotifySocket::Namespace::Path);
  REQUIRE(socket.name().starts_with("/"));
  REQUIRE(send_notify_datagram(socket.name(), "READY=1\nSTATUS=up"));
  CHECK(socket.receive(5s) == "READY=1\nSTATUS=up");
}

TEST_CASE("a notification reaches a socket in the abstract namespace ('@' name)") {
  NotifySocket socket(NotifySocket::Namespace::Abstract);
  REQUIRE(socket.name().starts_with("@"));
  REQUIRE(send_notify_datagram(socket.name(), "READY=1"));
  CHECK(socket.receive(5s) == "READY=1");
}

TEST_CASE("a NOTIFY_SOCKET that is not an absolute path or '@' name is refused, not guessed at") {
  const std::string too_long = "/" + std::string(200, 'x');
  for (const std::string& name : {std::string("relative/notify.sock"), std::string("@"), std::string("/"),
                                  std::string("vsock:2:1234"), too_long}) {
    CAPTURE(name);
    auto sent = send_notify_datagram(name, "READY=1");
    CHECK_FALSE(sent);
  }
}

TEST_CASE("a NOTIFY_SOCKET nobody listens on is an error naming it") {
  auto sent = send_notify_datagram("/nonexistent/egressd/notify.sock", "READY=1");
  REQUIRE_FALSE(sent);
  CHECK(sent.error() == "sendto /nonexistent/egressd/notify.sock: No such file or directory");
}

TEST_CASE("STATUS text is one line of at most kMaxStatusBytes, never cut inside a UTF-8 character") {
  CHECK(status_text("policy rejected:\nline 2\r\n") == "policy rejected: line 2  ");
  const std::string ascii(kMaxStatusBytes + 10, 'a');
  CHECK(status_text(ascii) == std::string(kMaxStatusBytes, 'a'));
  // "é" is two bytes: with an odd number of 'a's before, the limit falls inside the last one that fits.
  std::string accented(1, 'a');
  while (accented.size() < kMaxStatusBytes + 10) accented += "\xC3\xA9";
  const std::string cut = status_text(accented);
  CHECK(cut.size() == kMaxStatusBytes - 1);
  CHECK(cut.ends_with("\xC3\xA9"));
  // Exactly at the limit, a whole character is kept.
  std::string even = std::string(kMaxStatusBytes - 2, 'a') + "\xC3\xA9" + "tail";
  CHECK(status_text(even) == std::string(kMaxStatusBytes - 2, 'a') + "\xC3\xA9");
}

TEST_CASE("the notifier says READY=1 with the listening address, policy hash and rule count") {
  NotifySocket socket;
  SystemdNotifier notifier(socket.name());
  const auto policy = test_policy();
  notifier.ready("127.0.0.1:3128", *policy);
  CHECK(socket.receive(5s) == "READY=1\nSTATUS=listening on 127.0.0.1:3128; policy hash=" +
                                  policy->source_hash + " rules=2 from /etc/egressd/policy.yaml");
}

TEST_CASE(
    "the notifier brackets a reload with RELOADING=1 (and MONOTONIC_USEC) and READY=1 saying how it ended") {
  NotifySocket socket;
  SystemdNotifier notifier(socket.name());
  const auto policy = test_policy();
  notifier.ready("127.0.0.1:3128", *policy);
  REQUIRE(socket.receive(5s));

  const uint64_t before = monotonic_now_usec();
  notifier.on_reload_started();
  const uint64_t after = monotonic_now_usec();
  const std::optional<std::string> reloading = socket.receive(5s);
  REQUIRE(reloading);
  REQUIRE(reloading->starts_with("RELOADING=1\nMONOTONIC_USEC="));
  const size_t digits = std::string("RELOADING=1\nMONOTONIC_USEC=").size();
  const uint64_t usec = std::stoull(reloading->substr(digits, reloading->find('\n', digits) - digits));
  CHECK(usec >= before);
  CHECK(usec <= after);
  CHECK(reloading->ends_with("\nSTATUS=reloading the policy"));

  const std::string tail = " rules=2 from /etc/egressd/policy.yaml";
  notifier.on_reload_finished(policy::ReloadResult::applied(policy->source_hash), *policy);
  CHECK(socket.receive(5s) ==
        "READY=1\nSTATUS=listening on 127.0.0.1:3128; policy reloaded: hash=" + policy->source_hash + tail);
  notifier.on_reload_finished(policy::ReloadResult::unchanged(policy->source_hash), *policy);
  CHECK(socket.receive(5s) ==
        "READY=1\nSTATUS=listening on 127.0.0.1:3128; policy unchanged: hash=" + policy->source_hash + tail);
  policy::LoadErrors errors{{{"/etc/egressd/policy.yaml", 3, 7}, "unknown key 'hots'"}};
  notifier.on_reload_finished(policy::ReloadResult::rejected(policy->source_hash, errors), *policy);
  CHECK(socket.receive(5s) ==
        "READY=1\nSTATUS=listening on 127.0.0.1:3128; new policy rejected, last good kept "
        "(hash=" +
            policy->source_hash + tail + "): /etc/egressd/policy.yaml:3:7: unknown key 'hots'");
}

TEST_CASE("a rejected reload with a huge error still fits the 4096 bytes systemd reads") {
  NotifySocket socket;
  SystemdNotifier notifier(socket.name());
  const auto policy = test_policy();
  policy::LoadErrors errors{
      {{"/etc/egressd/policy.yaml", 1, 1}, "unknown key '" + std::string(10'000, 'k') + "'"}};
  notifier.on_reload_finished(policy::ReloadResult::rejected(policy->source_hash, errors), *policy);
  const std::optional<std::string> ready = socket.receive(5s);
  REQUIRE(ready);
  CHECK(ready->starts_with("READY=1\nSTATUS="));
  CHECK(ready->size() <= 4096);
}

TEST_CASE("the notifier says STOPPING=1 and why") {
  NotifySocket socket;
  SystemdNotifier notifier(socket.name());
  notifier.stopping("SIGTERM");
  CHECK(socket.receive(5s) == "STOPPING=1\nSTATUS=stopping (SIGTERM)");
}

TEST_CASE("the notifier follows NOTIFY_SOCKET, and without it is disabled") {
  NotifySocket socket;
  const char* saved = std::getenv("NOTIFY_SOCKET");
  const std::optional<std::string> restore =
      saved != nullptr ? std::optional<std::string>(saved) : std::nullopt;
  ::setenv("NOTIFY_SOCKET", socket.name().c_str(), 1);
  SystemdNotifier from_env = SystemdNotifier::from_environment();
  ::unsetenv("NOTIFY_SOCKET");
  SystemdNotifier without = SystemdNotifier::from_environment();
  if (restore) ::setenv("NOTIFY_SOCKET", restore->c_str(), 1);
  CHECK(from_env.enabled());
  from_env.stopping("SIGINT");
  CHECK(socket.receive(5s) == "STOPPING=1\nSTATUS=stopping (SIGINT)");
  CHECK_FALSE(without.enabled());
}
