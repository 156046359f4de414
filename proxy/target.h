// Where a request wants to go: parsed from a CONNECT authority or an absolute-form http:// URL.
// Strict: anything ambiguous (userinfo, bad port, odd host characters) is rejected with a reason.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace egressd::proxy {

struct Target {
  std::string host;  // lowercase name, IPv4 dotted quad, or IPv6 text without brackets
  uint16_t port = 0;
  std::string origin_form;  // path and query for absolute-form requests ("/" at least); empty for CONNECT
  bool is_ipv6 = false;
  bool tls = false;  // https: the scheme of url(), and 443 as the default port

  std::string authority() const;        // host:port, IPv6 in brackets
  std::string host_for_header() const;  // host, or host:port when the port is not the scheme's default
  std::string url() const;              // scheme://host[:port]/path, the default port unsaid
};

// "host:port", "1.2.3.4:443", "[::1]:443". The port is required.
Result<Target, std::string> parse_connect_authority(std::string_view authority);

// "http://host[:port]/path?query". https:// and other schemes are refused with a reason saying what to do.
Result<Target, std::string> parse_absolute_url(std::string_view url);

// A `Host` header value ("name", "name:port", "[v6]:port"); a missing port is `default_port`.
Result<Target, std::string> parse_host_header(std::string_view host, uint16_t default_port);

// A redirect's `Location` resolved against the request it answered: absolute http(s):// URLs, and
// references relative to `base` ("/path", "//host/path", "path"). Fragments are dropped.
Result<Target, std::string> resolve_location(std::string_view location, const Target& base);

}  // namespace egressd::proxy
