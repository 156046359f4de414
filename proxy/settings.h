// Process settings from the daemon config file and the command line: where to listen, which policy,
// logs, timeouts. Never part of the policy. Parsed and validated (settings.cpp, config_file.cpp) before
// anything starts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace egressd::proxy {

struct Settings {
  std::string config_path;  // --config: the daemon config file the flags were laid over (empty: none)
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 3128;
  std::optional<std::string> policy_path;  // none: the embedded example policy, without reloads
  std::string deny_log_path;               // empty: deny decisions go to the console only
  std::string access_log_path;
  std::string ca_cert_path;  // --ca-cert/--ca-key: the corporate CA (PEM); both or neither
  std::string ca_key_path;
  std::string state_dir;                    // where a CA is generated when none is given
  std::string upstream_ca_path;             // extra trust anchors for upstream TLS (internal CAs)
  std::optional<std::string> metrics_host;  // --metrics ADDR:PORT: Prometheus /metrics and /healthz
  uint16_t metrics_port = 0;
  std::string ready_file;                      // written (atomically) with "host:port" once listening
  std::map<std::string, std::string> resolve;  // --resolve HOST=ADDR: dial ADDR for HOST, no DNS
  bool trust_on_first_use = false;  // record each allowed binary's SHA-256 in state_dir; deny changes
  bool watch_policy = true;         // inotify on the policy file; SIGHUP always reloads
  std::string log_level = "info";
  uint64_t head_timeout_ms = 30'000;           // a request head must arrive within this
  uint64_t identify_timeout_ms = 5'000;        // caller identification; past it, deny
  uint64_t connect_timeout_ms = 10'000;        // DNS + TCP connect to the upstream
  uint64_t idle_timeout_ms = 300'000;          // no bytes either way on an established exchange or tunnel
  uint64_t handshake_timeout_ms = 10'000;      // the client's TLS handshake after the 200 (slowloris)
  uint64_t max_connections = 4096;             // client connections open at once; past it, 503
  uint64_t max_connections_per_binary = 1024;  // of those, from one executable
};

// `egressd run` flags -> Settings. With `--config FILE`, the file's settings come first and every other
// flag overrides them, wherever it stands. An error names the flag at fault; config file errors are one
// line each, FILE:LINE:COL: message.
Result<Settings, std::string> parse_run_flags(const std::vector<std::string_view>& args);

// Checks shared by the flags and the config file; `what` names the flag or key in the error.
// ADDR:PORT or [ADDR6]:PORT; port 0 picks a free port.
Result<std::pair<std::string, uint16_t>, std::string> parse_address(std::string_view what,
                                                                    std::string_view text);
// A decimal number of at least 1.
Result<uint64_t, std::string> parse_positive(std::string_view what, std::string_view text);
// A --resolve entry: the host (lowercased) and an IP literal (brackets around IPv6 removed).
Result<std::pair<std::string, std::string>, std::string> parse_resolve(std::string_view what,
                                                                       std::string_view host,
                                                                       std::string_view addr);
// trace, debug, info, warn, error or off (as the console log takes them).
Result<void, std::string> check_log_level(std::string_view what, std::string_view level);

}  // namespace egressd::proxy
