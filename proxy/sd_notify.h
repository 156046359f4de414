// Telling systemd how egressd is doing (Type=notify): READY=1 once it listens, RELOADING=1 and READY=1
// around every policy reload, STOPPING=1 on the way out, each with a STATUS= line for `systemctl status`.
// The sd_notify(3) protocol written directly, without libsystemd: one datagram per message to the AF_UNIX
// socket that $NOTIFY_SOCKET names. Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "policy/policy.h"
#include "policy/store.h"
#include "proxy/reload_observer.h"

namespace egressd::proxy {

// systemd reads at most 4096 bytes of a notification and drops a longer datagram whole (READY=1 with it),
// so a STATUS= value is cut to this.
inline constexpr size_t kMaxStatusBytes = 1024;

// Sends `message` ("READY=1\nSTATUS=...") as one datagram to `socket_name`: an absolute path, or '@'
// followed by a name in the abstract namespace. Never blocks: a full socket queue is an error.
Result<void, std::string> send_notify_datagram(std::string_view socket_name, std::string_view message);

// `text` fit to be a STATUS= value: line breaks become spaces, at most kMaxStatusBytes bytes, never
// ending inside a UTF-8 sequence.
std::string status_text(std::string_view text);

// CLOCK_MONOTONIC in microseconds: the MONOTONIC_USEC= that goes with RELOADING=1 (systemd 253+).
uint64_t monotonic_usec();

class SystemdNotifier : public ReloadObserver {
 public:
  // Without a socket name every call does nothing.
  explicit SystemdNotifier(std::string socket_name) : socket_name_(std::move(socket_name)) {}
  // $NOTIFY_SOCKET, as systemd sets it for Type=notify services; unset or empty: disabled.
  static SystemdNotifier from_environment();

  bool enabled() const { return !socket_name_.empty(); }
  // READY=1: egressd listens on `address` with `policy` in force.
  void ready(const std::string& address, const policy::Policy& policy);
  void on_reload_started() override;
  void on_reload_finished(const policy::ReloadResult& result, const policy::Policy& in_force) override;
  // STOPPING=1, saying why ("SIGTERM").
  void stopping(std::string_view why);

 private:
  void send(const std::string& message);  // a failure is logged (warn), never fatal

  std::string socket_name_;
  std::string address_;  // where egressd listens, for every READY=1's STATUS
};

}  // namespace egressd::proxy
