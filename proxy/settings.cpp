// Settings from `egressd run` flags, laid over the daemon config file when --config names one: parsed and
// checked here, before anything starts.
#include "proxy/settings.h"

#include <netinet/in.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <spdlog/common.h>

#include "proxy/config_file.h"

namespace egressd::proxy {

namespace {

// Flags that stand alone; every other flag takes a value (`--flag VALUE` or `--flag=VALUE`).
constexpr std::string_view kSwitches[] = {"--trust-on-first-use", "--no-watch"};
constexpr std::string_view kValueFlags[] = {"--config",
                                            "--listen",
                                            "--metrics",
                                            "--policy",
                                            "--deny-log",
                                            "--access-log",
                                            "--ca-cert",
                                            "--ca-key",
                                            "--state-dir",
                                            "--upstream-ca",
                                            "--ready-file",
                                            "--log-level",
                                            "--resolve",
                                            "--head-timeout-ms",
                                            "--identify-timeout-ms",
                                            "--connect-timeout-ms",
                                            "--idle-timeout-ms",
                                            "--handshake-timeout-ms",
                                            "--max-connections",
                                            "--max-connections-per-binary"};

bool is_one_of(std::string_view name, const auto& names) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

struct Flag {
  std::string_view name;
  std::string_view value;  // empty for a switch
};

// The command line as flags and their values, before any is applied: an unknown option is reported as
// such, never as one that "needs a value".
Result<std::vector<Flag>, std::string> split_flags(const std::vector<std::string_view>& args) {
  std::vector<Flag> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view name = args[i];
    std::optional<std::string_view> inline_value;
    if (const auto eq = name.find('='); name.starts_with("--") && eq != std::string_view::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (!name.starts_with("--")) return unexpected(fmt::format("unexpected argument '{}'", name));
    if (is_one_of(name, kSwitches)) {
      if (inline_value) return unexpected(fmt::format("{} takes no value", name));
      flags.push_back({name, {}});
      continue;
    }
    if (!is_one_of(name, kValueFlags)) return unexpected(fmt::format("unknown option '{}'", name));
    if (inline_value) {
      flags.push_back({name, *inline_value});
    } else if (i + 1 < args.size()) {
      flags.push_back({name, args[++i]});
    } else {
      return unexpected(fmt::format("{} needs a value", name));
    }
  }
  return flags;
}

Result<void, std::string> apply_flag(const Flag& flag, Settings& settings) {
  const std::string_view name = flag.name;
  const std::string_view value = flag.value;
  if (name == "--trust-on-first-use") {
    settings.trust_on_first_use = true;
  } else if (name == "--no-watch") {
    settings.watch_policy = false;
  } else if (name == "--listen" || name == "--metrics") {
    auto address = parse_address(name, value);
    if (!address) return unexpected(address.error());
    if (name == "--listen") {
      std::tie(settings.listen_host, settings.listen_port) = *address;
    } else {
      std::tie(settings.metrics_host, settings.metrics_port) = *address;
    }
  } else if (name == "--policy") {
    settings.policy_path = std::string(value);
  } else if (name == "--deny-log") {
    settings.deny_log_path = std::string(value);
  } else if (name == "--access-log") {
    settings.access_log_path = std::string(value);
  } else if (name == "--ca-cert") {
    settings.ca_cert_path = std::string(value);
  } else if (name == "--ca-key") {
    settings.ca_key_path = std::string(value);
  } else if (name == "--state-dir") {
    settings.state_dir = std::string(value);
  } else if (name == "--upstream-ca") {
    settings.upstream_ca_path = std::string(value);
  } else if (name == "--ready-file") {
    settings.ready_file = std::string(value);
  } else if (name == "--log-level") {
    if (auto known = check_log_level(name, value); !known) return known;
    settings.log_level = std::string(value);
  } else if (name == "--resolve") {
    const auto eq = value.find('=');
    auto entry = parse_resolve(name, value.substr(0, eq),
                               eq == std::string_view::npos ? std::string_view() : value.substr(eq + 1));
    if (!entry) return unexpected(entry.error());
    settings.resolve[entry->first] = entry->second;
  } else if (uint64_t* number = name == "--head-timeout-ms"        ? &settings.head_timeout_ms
                                : name == "--identify-timeout-ms"  ? &settings.identify_timeout_ms
                                : name == "--connect-timeout-ms"   ? &settings.connect_timeout_ms
                                : name == "--idle-timeout-ms"      ? &settings.idle_timeout_ms
                                : name == "--handshake-timeout-ms" ? &settings.handshake_timeout_ms
                                : name == "--max-connections"      ? &settings.max_connections
                                : name == "--max-connections-per-binary"
                                    ? &settings.max_connections_per_binary
                                    : nullptr) {
    auto n = parse_positive(name, value);
    if (!n) return unexpected(n.error());
    *number = *n;
  } else {
    return unexpected(fmt::format("unknown option '{}'", name));  // listed in kValueFlags, not handled here
  }
  return {};
}

}  // namespace

Result<std::pair<std::string, uint16_t>, std::string> parse_address(std::string_view what,
                                                                    std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      return unexpected(fmt::format("{}: expected [ADDR]:PORT, got '{}'", what, text));
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return unexpected(fmt::format("{}: expected ADDR:PORT, got '{}'", what, text));
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value > 65535 || host.empty()) {
    return unexpected(fmt::format("{}: invalid address '{}'", what, text));
  }
  return std::pair{std::string(host), static_cast<uint16_t>(value)};
}

Result<uint64_t, std::string> parse_positive(std::string_view what, std::string_view text) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value == 0) {
    return unexpected(fmt::format("{} needs a positive number, got '{}'", what, text));
  }
  return value;
}

Result<std::pair<std::string, std::string>, std::string> parse_resolve(std::string_view what,
                                                                       std::string_view host_text,
                                                                       std::string_view addr_text) {
  std::string host(host_text);
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string addr(addr_text);
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  sockaddr_storage probe{};
  if (host.empty() || addr.empty() ||
      (uv_ip4_addr(addr.c_str(), 0, reinterpret_cast<sockaddr_in*>(&probe)) != 0 &&
       uv_ip6_addr(addr.c_str(), 0, reinterpret_cast<sockaddr_in6*>(&probe)) != 0)) {
    return unexpected(fmt::format("{} needs HOST=IP-ADDRESS, got '{}={}'", what, host_text, addr_text));
  }
  return std::pair{std::move(host), std::move(addr)};
}

Result<void, std::string> check_log_level(std::string_view what, std::string_view level) {
  // The same test as log::set_level, which applies it once the console exists.
  if (spdlog::level::from_str(std::string(level)) == spdlog::level::off && level != "off") {
    return unexpected(
        fmt::format("{}: unknown level '{}' (trace, debug, info, warn, error, off)", what, level));
  }
  return {};
}

Result<Settings, std::string> parse_run_flags(const std::vector<std::string_view>& args) {
  auto flags = split_flags(args);
  if (!flags) return unexpected(flags.error());
  Settings settings;
  // The config file first, whatever its place on the command line: every other flag overrides it.
  for (const Flag& flag : *flags) {
    if (flag.name != "--config") continue;
    if (!settings.config_path.empty()) return unexpected(std::string("--config given more than once"));
    if (flag.value.empty()) return unexpected(std::string("--config needs a file name"));
    settings.config_path = std::string(flag.value);
  }
  if (!settings.config_path.empty()) {
    if (auto applied = apply_config_file(settings.config_path, settings); !applied) {
      std::string lines;
      for (const ConfigError& error : applied.error()) {
        if (!lines.empty()) lines += '\n';
        lines += error.to_string();
      }
      return unexpected(std::move(lines));
    }
  }
  for (const Flag& flag : *flags) {
    if (flag.name == "--config") continue;
    if (auto applied = apply_flag(flag, settings); !applied) return unexpected(applied.error());
  }
  if (settings.ca_cert_path.empty() != settings.ca_key_path.empty()) {
    return unexpected(
        std::string("--ca-cert and --ca-key (ca_cert and ca_key in a config file) go together"));
  }
  if (settings.state_dir.empty()) {
    const char* from_systemd = std::getenv("STATE_DIRECTORY");
    settings.state_dir = from_systemd != nullptr && *from_systemd != '\0' ? from_systemd : "/var/lib/egressd";
  }
  return settings;
}

}  // namespace egressd::proxy
