// Settings from `egressd run` flags: parsed and checked here, before anything starts.
#include "proxy/settings.h"

#include <netinet/in.h>
#include <uv.h>

#include <cctype>
#include <charconv>
#include <cstdlib>

#include <fmt/format.h>

namespace egressd::proxy {

namespace {

Result<uint64_t, std::string> parse_number(std::string_view flag, std::string_view text) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value == 0) {
    return unexpected(fmt::format("{} needs a positive number, got '{}'", flag, text));
  }
  return value;
}

Result<void, std::string> parse_listen(std::string_view text, Settings& settings) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      return unexpected(fmt::format("--listen: expected [ADDR]:PORT, got '{}'", text));
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return unexpected(fmt::format("--listen: expected ADDR:PORT, got '{}'", text));
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value > 65535 || host.empty()) {
    return unexpected(fmt::format("--listen: invalid address '{}'", text));
  }
  settings.listen_host = std::string(host);
  settings.listen_port = static_cast<uint16_t>(value);
  return {};
}

}  // namespace

Result<Settings, std::string> parse_run_flags(const std::vector<std::string_view>& args) {
  Settings settings;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view flag = args[i];
    std::optional<std::string_view> inline_value;
    if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    auto value = [&]() -> Result<std::string_view, std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) return unexpected(fmt::format("{} needs a value", flag));
      return args[++i];
    };
    if (flag == "--trust-on-first-use") {
      settings.trust_on_first_use = true;
      continue;
    }
    if (flag == "--no-watch") {
      settings.watch_policy = false;
      continue;
    }
    auto v = value();
    if (!v) return unexpected(v.error());
    if (flag == "--listen") {
      if (auto ok = parse_listen(*v, settings); !ok) return unexpected(ok.error());
    } else if (flag == "--policy") {
      settings.policy_path = std::string(*v);
    } else if (flag == "--deny-log") {
      settings.deny_log_path = std::string(*v);
    } else if (flag == "--access-log") {
      settings.access_log_path = std::string(*v);
    } else if (flag == "--ca-cert") {
      settings.ca_cert_path = std::string(*v);
    } else if (flag == "--ca-key") {
      settings.ca_key_path = std::string(*v);
    } else if (flag == "--state-dir") {
      settings.state_dir = std::string(*v);
    } else if (flag == "--upstream-ca") {
      settings.upstream_ca_path = std::string(*v);
    } else if (flag == "--ready-file") {
      settings.ready_file = std::string(*v);
    } else if (flag == "--log-level") {
      settings.log_level = std::string(*v);
    } else if (flag == "--resolve") {
      const auto eq = v->find('=');
      std::string host(v->substr(0, eq));
      for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string addr(eq == std::string_view::npos ? std::string_view() : v->substr(eq + 1));
      if (!addr.empty() && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
      sockaddr_storage probe{};
      if (host.empty() || addr.empty() ||
          (uv_ip4_addr(addr.c_str(), 0, reinterpret_cast<sockaddr_in*>(&probe)) != 0 &&
           uv_ip6_addr(addr.c_str(), 0, reinterpret_cast<sockaddr_in6*>(&probe)) != 0)) {
        return unexpected(fmt::format("--resolve needs HOST=IP-ADDRESS, got '{}'", *v));
      }
      settings.resolve[host] = addr;
    } else if (uint64_t* number = flag == "--head-timeout-ms"        ? &settings.head_timeout_ms
                                  : flag == "--identify-timeout-ms"  ? &settings.identify_timeout_ms
                                  : flag == "--connect-timeout-ms"   ? &settings.connect_timeout_ms
                                  : flag == "--idle-timeout-ms"      ? &settings.idle_timeout_ms
                                  : flag == "--handshake-timeout-ms" ? &settings.handshake_timeout_ms
                                  : flag == "--max-connections"      ? &settings.max_connections
                                  : flag == "--max-connections-per-binary"
                                      ? &settings.max_connections_per_binary
                                      : nullptr) {
      auto n = parse_number(flag, *v);
      if (!n) return unexpected(n.error());
      if (*n == 0) return unexpected(fmt::format("{} must be at least 1", flag));
      *number = *n;
    } else {
      return unexpected(fmt::format("unknown option '{}'", flag));
    }
  }
  if (settings.ca_cert_path.empty() != settings.ca_key_path.empty()) {
    return unexpected(std::string("--ca-cert and --ca-key go together"));
  }
  if (settings.state_dir.empty()) {
    const char* from_systemd = std::getenv("STATE_DIRECTORY");
    settings.state_dir = from_systemd != nullptr && *from_systemd != '\0' ? from_systemd : "/var/lib/egressd";
  }
  return settings;
}

}  // namespace egressd::proxy
