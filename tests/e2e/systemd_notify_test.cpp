// Type=notify: egressd run under a fake $NOTIFY_SOCKET (a datagram socket the test binds) says READY=1
// once it listens, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around every reload, whether SIGHUP or
// an edit of the file caused it, says in STATUS whether a new policy was taken or rejected, and says
// STOPPING=1 on SIGTERM.
#include <doctest/doctest.h>
#include <signal.h>
#include <time.h>

#include <map>
#include <optional>
#include <string>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/notify_socket.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

// The variables of one notification ("READY=1\nSTATUS=...").
using Notification = std::map<std::string, std::string>;

Notification parse_notification(const std::string& datagram) {
  Notification fields;
  size_t at = 0;
  while (at < datagram.size()) {
    const size_t end = std::min(datagram.find('\n', at), datagram.size());
    const std::string line = datagram.substr(at, end - at);
    const size_t eq = line.find('=');
    fields[line.substr(0, eq)] = eq == std::string::npos ? "" : line.substr(eq + 1);
    at = end + 1;
  }
  return fields;
}

// The next notification; fails the test when none comes within 10 s.
Notification next(NotifySocket& socket) {
  const std::optional<std::string> datagram = socket.receive(10s);
  REQUIRE_MESSAGE(datagram.has_value(), "no notification within 10 s");
  return parse_notification(*datagram);
}

uint64_t monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1'000;
}

// The 16 hex digits after `prefix` in egressd's console.
std::string hash_after(const Egressd& egressd, std::string_view prefix) {
  const std::string text = egressd.stderr_text();
  const size_t at = text.rfind(prefix);
  return at == std::string::npos ? std::string() : text.substr(at + prefix.size(), 16);
}

std::string a_policy(uint16_t port) {
  return policy_allowing(curl(), "127.0.0.1", port);
}

// Reads notifications until a READY=1 whose STATUS contains `status_part`, checking that each READY=1
// on the way closes a RELOADING=1 (an editor's write may cause more than one reload).
Notification ready_after_reload(NotifySocket& socket, const std::string& status_part) {
  while (true) {
    const Notification reloading = next(socket);
    CAPTURE(reloading.count("STATUS") ? reloading.at("STATUS") : "");
    REQUIRE(reloading.count("RELOADING") == 1);
    CHECK(reloading.at("RELOADING") == "1");
    CHECK(reloading.count("MONOTONIC_USEC") == 1);
    const Notification ready = next(socket);
    REQUIRE(ready.count("READY") == 1);
    if (ready.at("STATUS").find(status_part) != std::string::npos) return ready;
  }
}

TEST_CASE("under a NOTIFY_SOCKET, egressd says READY=1 once listening, with its address and policy" *
          doctest::timeout(60)) {
  NotifySocket socket;
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(a_policy(origin.port()), {}, PolicyLayout::File, 10s, EgressdNetwork::Host, {},
                  {socket.env()});
  INFO(egressd.diagnostics());
  const Notification ready = next(socket);
  CHECK(ready.at("READY") == "1");
  const std::string hash = hash_after(egressd, "policy hash=");
  REQUIRE(hash.size() == 16);
  CHECK(ready.at("STATUS") == "listening on " + egressd.host_port() + "; policy hash=" + hash +
                                  " rules=1 from " + egressd.policy_path());
  // READY=1 comes once everything is up: a client gets through at once.
  CHECK(http_status(curl(), egressd, origin.url("/hello")) == "200");
}

TEST_CASE("READY=1 reaches a NOTIFY_SOCKET in the abstract namespace" * doctest::timeout(60)) {
  NotifySocket socket(NotifySocket::Namespace::Abstract);
  Egressd egressd(a_policy(9), {}, PolicyLayout::File, 10s, EgressdNetwork::Host, {}, {socket.env()});
  INFO(egressd.diagnostics());
  CHECK(next(socket).at("READY") == "1");
}

TEST_CASE("SIGHUP: egressd says RELOADING=1 with the current MONOTONIC_USEC, then READY=1" *
          doctest::timeout(60)) {
  NotifySocket socket;
  Egressd egressd(a_policy(9), {"--no-watch"}, PolicyLayout::File, 10s, EgressdNetwork::Host, {},
                  {socket.env()});
  INFO(egressd.diagnostics());
  REQUIRE(next(socket).at("READY") == "1");
  const std::string hash = hash_after(egressd, "policy hash=");

  const uint64_t before = monotonic_usec();
  egressd.sighup();
  const Notification reloading = next(socket);
  const uint64_t after = monotonic_usec();
  REQUIRE(reloading.count("RELOADING") == 1);
  CHECK(reloading.at("RELOADING") == "1");
  REQUIRE(reloading.count("MONOTONIC_USEC") == 1);
  const uint64_t usec = std::stoull(reloading.at("MONOTONIC_USEC"));
  CHECK(usec >= before);  // systemd 253+ matches it against the time it sent SIGHUP
  CHECK(usec <= after);
  CHECK(reloading.at("STATUS") == "reloading the policy");

  const Notification ready = next(socket);
  CHECK(ready.at("READY") == "1");
  CHECK(ready.at("STATUS") == "listening on " + egressd.host_port() + "; policy unchanged: hash=" + hash +
                                  " rules=1 from " + egressd.policy_path());
}

TEST_CASE("a policy edit: egressd says RELOADING=1, then READY=1 naming the new policy it took" *
          doctest::timeout(60)) {
  NotifySocket socket;
  Egressd egressd(a_policy(9), {}, PolicyLayout::File, 10s, EgressdNetwork::Host, {}, {socket.env()});
  INFO(egressd.diagnostics());
  REQUIRE(next(socket).at("READY") == "1");
  const std::string old_hash = hash_after(egressd, "policy hash=");

  egressd.write_policy_by_rename(
      policy_allowing({{"one", {curl()}, {{"127.0.0.1", 9}}}, {"two", {curl()}, {{"127.0.0.1", 10}}}}));
  const Notification ready = ready_after_reload(socket, "policy reloaded: ");
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash="));
  const std::string new_hash = hash_after(egressd, "policy reloaded: hash=");
  CHECK(new_hash != old_hash);
  CHECK(ready.at("STATUS") == "listening on " + egressd.host_port() + "; policy reloaded: hash=" + new_hash +
                                  " rules=2 from " + egressd.policy_path());
}

TEST_CASE("a broken policy edit: READY=1 says the new policy was rejected and the last good one kept" *
          doctest::timeout(60)) {
  NotifySocket socket;
  Egressd egressd(a_policy(9), {}, PolicyLayout::File, 10s, EgressdNetwork::Host, {}, {socket.env()});
  INFO(egressd.diagnostics());
  REQUIRE(next(socket).at("READY") == "1");
  const std::string hash = hash_after(egressd, "policy hash=");

  egressd.write_policy_by_rename("version: 1\nnetwork_policies:\n  broken: { endpoints: [ }\n");
  const Notification ready = ready_after_reload(socket, "rejected");
  CHECK(ready.at("STATUS").starts_with(
      "listening on " + egressd.host_port() + "; new policy rejected, last good kept (hash=" + hash +
      " rules=1 from " + egressd.policy_path() + "): " + egressd.policy_path() + ":3:"));
}

TEST_CASE("SIGTERM: egressd says STOPPING=1 and exits 0" * doctest::timeout(60)) {
  NotifySocket socket;
  Egressd egressd(a_policy(9), {}, PolicyLayout::File, 10s, EgressdNetwork::Host, {}, {socket.env()});
  INFO(egressd.diagnostics());
  REQUIRE(next(socket).at("READY") == "1");
  CHECK(egressd.stop(SIGTERM) == 0);
  const Notification stopping = next(socket);
  CHECK(stopping.at("STOPPING") == "1");
  CHECK(stopping.at("STATUS") == "stopping (SIGTERM)");
}

TEST_CASE("a NOTIFY_SOCKET nobody listens on is reported, and egressd serves anyway" * doctest::timeout(60)) {
  const TempDir dir;
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(a_policy(origin.port()), {}, PolicyLayout::File, 10s, EgressdNetwork::Host, {},
                  {"NOTIFY_SOCKET=" + dir.file("nobody.sock")});
  INFO(egressd.diagnostics());
  CHECK(egressd.wait_for_stderr("cannot tell systemd 'READY=1': sendto " + dir.file("nobody.sock") +
                                ": No such file or directory"));
  CHECK(http_status(curl(), egressd, origin.url("/hello")) == "200");
}

}  // namespace
}  // namespace egressd::test::e2e
