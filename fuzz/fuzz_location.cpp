// Fuzz target: a redirect's Location resolved against the request it answered (resolve_location), which
// decides where a 3xx may send its caller next. The first input byte picks the base request; the rest is
// the Location value.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/check.h"
#include "proxy/target.h"

namespace {

using egressd::proxy::Target;

Target base_target(uint8_t selector) {
  Target base;
  switch (selector % 5) {
    case 0:
      base.host = "example.com";
      base.port = 80;
      base.origin_form = "/a/b/c?x=1";
      break;
    case 1:
      base.host = "2001:db8::1";
      base.is_ipv6 = true;
      base.port = 8443;
      base.origin_form = "/";
      base.tls = true;
      break;
    case 2:
      base.host = "10.0.0.1";
      base.port = 443;
      base.origin_form = "/dir/";
      base.tls = true;
      break;
    case 3:
      base.host = "api.example.org";
      base.port = 8080;
      base.origin_form = "/p";
      break;
    default:  // a CONNECT target: no request path
      base.host = "example.net";
      base.port = 443;
      base.tls = true;
      break;
  }
  return base;
}

// The authority a Location names, as written: after "scheme://" (or a leading "//"), up to the path,
// query or fragment.
std::string_view written_authority(std::string_view location) {
  const std::size_t scheme_end = location.starts_with("//") ? std::string_view::npos : location.find("://");
  const std::string_view rest = location.substr(scheme_end == std::string_view::npos ? 2 : scheme_end + 3);
  return rest.substr(0, rest.find_first_of("/?#"));
}

// RFC 3986 §3.1: a scheme is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) before the first ':'.
bool starts_with_scheme(std::string_view location) {
  const std::size_t colon = location.find(':');
  if (colon == std::string_view::npos || colon == 0 ||
      std::isalpha(static_cast<unsigned char>(location[0])) == 0) {
    return false;
  }
  return std::all_of(location.begin(), location.begin() + static_cast<std::ptrdiff_t>(colon), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '-' || c == '.';
  });
}

bool same_target(const Target& a, const Target& b) {
  return a.host == b.host && a.port == b.port && a.origin_form == b.origin_form && a.is_ipv6 == b.is_ipv6 &&
         a.tls == b.tls;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Target base = base_target(data[0]);
  const std::string_view location(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto resolved = egressd::proxy::resolve_location(location, base);
  if (!resolved) {
    EGRESSD_CHECK(!resolved.error().empty());
    return 0;
  }
  EGRESSD_CHECK(!resolved->host.empty());
  EGRESSD_CHECK(resolved->port != 0);
  EGRESSD_CHECK(resolved->origin_form.starts_with('/'));
  EGRESSD_CHECK(resolved->origin_form.find('#') == std::string::npos);  // fragments never leave the client
  // Only a Location naming an authority ("scheme://..." or "//...") may lead to another host or port.
  const bool names_authority = starts_with_scheme(location) || location.starts_with("//");
  if (names_authority) {
    // Every byte of the authority counts: none is a control character, such as a NUL that a C string
    // function (inet_pton) would stop at, leaving the rest unchecked.
    const std::string_view authority = written_authority(location);
    EGRESSD_CHECK(std::none_of(authority.begin(), authority.end(),
                               [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }));
  } else {
    EGRESSD_CHECK(resolved->host == base.host && resolved->port == base.port && resolved->tls == base.tls &&
                  resolved->is_ipv6 == base.is_ipv6);
  }
  // url() is what the redirect memory keeps: read back, against any base, it is the same target.
  const std::string url = resolved->url();
  auto again = egressd::proxy::resolve_location(url, base_target(static_cast<uint8_t>(data[0] + 1)));
  EGRESSD_CHECK(again.has_value());
  EGRESSD_CHECK(same_target(*again, *resolved));
  EGRESSD_CHECK(again->url() == url);
  return 0;
}
