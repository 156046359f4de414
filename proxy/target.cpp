#include "proxy/target.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace egressd::proxy {
namespace {

bool is_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
}

Result<uint16_t, std::string> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || text.size() > 5 || ec != std::errc() || ptr != end || value == 0 || value > 65535) {
    return unexpected(fmt::format("invalid port '{}'", text));
  }
  return static_cast<uint16_t>(value);
}

// Parses "host:port" / "[v6]:port" / (when default_port != 0) "host" alone.
Result<Target, std::string> parse_host_port(std::string_view text, uint16_t default_port) {
  Target target;
  std::string_view host;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return unexpected(std::string("unterminated '[' in authority"));
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return unexpected(std::string("expected ':' after ']' in authority"));
      port_text = rest.substr(1);
    }
    in6_addr v6{};
    const std::string host_str(host);
    // inet_pton reads a C string: a NUL would end the address early and hide whatever follows it.
    if (host.find('\0') != std::string_view::npos || inet_pton(AF_INET6, host_str.c_str(), &v6) != 1) {
      return unexpected(fmt::format("invalid IPv6 address '{}'", host));
    }
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, &v6, buf, sizeof buf);
    target.host = buf;
    target.is_ipv6 = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos) {
      host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
      if (host.find(':') != std::string_view::npos) {
        return unexpected(std::string("IPv6 addresses must be written in brackets, e.g. [::1]:443"));
      }
    } else {
      host = text;
    }
    if (host.empty()) return unexpected(std::string("empty host"));
    if (host.size() > 253) return unexpected(std::string("host name longer than 253 characters"));
    if (!std::all_of(host.begin(), host.end(), is_host_char)) {
      return unexpected(fmt::format("invalid character in host '{}'", host));
    }
    if (host.front() == '.' || host.back() == '.' || host.find("..") != std::string_view::npos) {
      return unexpected(fmt::format("invalid host name '{}'", host));
    }
    target.host.resize(host.size());
    std::transform(host.begin(), host.end(), target.host.begin(),
                   [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  }
  if (port_text.empty() && default_port == 0) {
    return unexpected(std::string("a port is required (host:port)"));
  }
  if (port_text.empty() && text.find(':') != std::string_view::npos && !text.starts_with('[')) {
    return unexpected(std::string("empty port"));
  }
  if (port_text.empty()) {
    target.port = default_port;
  } else {
    auto port = parse_port(port_text);
    if (!port) return unexpected(port.error());
    target.port = *port;
  }
  return target;
}

}  // namespace

std::string Target::authority() const {
  return is_ipv6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::string Target::host_for_header() const {
  if (port != (tls ? 443 : 80)) return authority();
  return is_ipv6 ? "[" + host + "]" : host;
}

std::string Target::url() const {
  return fmt::format("{}://{}{}", tls ? "https" : "http", host_for_header(), origin_form);
}

Result<Target, std::string> parse_connect_authority(std::string_view authority) {
  if (authority.find('/') != std::string_view::npos || authority.find('@') != std::string_view::npos) {
    return unexpected(fmt::format("CONNECT needs host:port, got '{}'", authority));
  }
  return parse_host_port(authority, 0);
}

namespace {

// "scheme://authority/path?query#fragment" for http and https.
Result<Target, std::string> parse_url(std::string_view url, bool allow_https) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return unexpected(std::string(
        "egressd is a forward proxy: send absolute-form requests (http://host/path) or use CONNECT"));
  }
  std::string scheme(url.substr(0, scheme_end));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  if (scheme == "https" && !allow_https) {
    return unexpected(
        std::string("use CONNECT for https:// URLs (set HTTPS_PROXY, not an https:// request)"));
  }
  if (scheme != "http" && scheme != "https")
    return unexpected(fmt::format("unsupported URL scheme '{}'", scheme));
  const bool tls = scheme == "https";
  const auto rest = url.substr(scheme_end + 3);
  const auto path_start = rest.find_first_of("/?#");
  const auto authority = rest.substr(0, path_start);
  if (authority.find('@') != std::string_view::npos) {
    return unexpected(std::string("credentials in the URL authority are not supported"));
  }
  auto target = parse_host_port(authority, tls ? 443 : 80);
  if (!target) return target;
  target->tls = tls;
  std::string_view path = path_start == std::string_view::npos ? std::string_view() : rest.substr(path_start);
  if (const auto hash = path.find('#'); hash != std::string_view::npos) path = path.substr(0, hash);
  target->origin_form = path.empty() || path[0] != '/' ? "/" + std::string(path) : std::string(path);
  return target;
}

}  // namespace

Result<Target, std::string> parse_absolute_url(std::string_view url) {
  return parse_url(url, /*allow_https=*/false);
}

Result<Target, std::string> parse_host_header(std::string_view host, uint16_t default_port) {
  if (host.find_first_of("/@ \t") != std::string_view::npos) {
    return unexpected(fmt::format("invalid Host header '{}'", host));
  }
  return parse_host_port(host, default_port);
}

namespace {

// Whether a URI reference starts with a scheme (RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
// then ':'), as "https://..." does and "/login?next=http://x" does not.
bool has_scheme(std::string_view reference) {
  const auto colon = reference.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  if (std::isalpha(static_cast<unsigned char>(reference[0])) == 0) return false;
  return std::all_of(reference.begin(), reference.begin() + static_cast<std::ptrdiff_t>(colon), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '-' || c == '.';
  });
}

}  // namespace

Result<Target, std::string> resolve_location(std::string_view location, const Target& base) {
  if (has_scheme(location)) return parse_url(location, /*allow_https=*/true);
  if (location.starts_with("//"))
    return parse_url(std::string(base.tls ? "https:" : "http:") + std::string(location), true);
  if (location.empty()) return unexpected(std::string("empty Location"));
  Target target = base;
  std::string_view reference = location;
  if (const auto hash = reference.find('#'); hash != std::string_view::npos)
    reference = reference.substr(0, hash);
  if (reference.starts_with('/')) {
    target.origin_form = std::string(reference);
  } else {
    // A relative path replaces the last segment of the base path (RFC 3986 §5.2.3).
    const std::string_view base_path =
        std::string_view(base.origin_form).substr(0, base.origin_form.find('?'));
    const auto slash = base_path.rfind('/');
    target.origin_form = std::string(base_path.substr(0, slash == std::string_view::npos ? 0 : slash + 1));
    if (target.origin_form.empty()) target.origin_form = "/";
    target.origin_form += std::string(reference);
  }
  return target;
}

}  // namespace egressd::proxy
