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

  std::string authority() const;  // host:port, IPv6 in brackets
  std::string url() const;        // http://authority/path for absolute-form requests
};

// "host:port", "1.2.3.4:443", "[::1]:443". The port is required.
Result<Target, std::string> parse_connect_authority(std::string_view authority);

// "http://host[:port]/path?query". https:// and other schemes are refused with a reason saying what to do.
Result<Target, std::string> parse_absolute_url(std::string_view url);

}  // namespace egressd::proxy
