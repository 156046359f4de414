#include <doctest/doctest.h>

#include "proxy/target.h"

using egressd::proxy::parse_absolute_url;
using egressd::proxy::parse_connect_authority;

TEST_CASE("CONNECT authorities: names, IPv4 and bracketed IPv6 with a port") {
  struct Row {
    const char* text;
    const char* host;
    uint16_t port;
    const char* authority;
  };
  const Row rows[] = {
      {"example.com:443", "example.com", 443, "example.com:443"},
      {"API.GitHub.com:443", "api.github.com", 443, "api.github.com:443"},
      {"10.1.2.3:8443", "10.1.2.3", 8443, "10.1.2.3:8443"},
      {"[::1]:443", "::1", 443, "[::1]:443"},
      {"[2001:DB8:0::1]:80", "2001:db8::1", 80, "[2001:db8::1]:80"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.text);
    auto target = parse_connect_authority(row.text);
    REQUIRE(target.has_value());
    CHECK(target->host == row.host);
    CHECK(target->port == row.port);
    CHECK(target->authority() == row.authority);
    CHECK(target->origin_form.empty());
  }
}

TEST_CASE("CONNECT authorities without a valid port or with junk are refused") {
  for (const char* text :
       {"example.com", "example.com:", "example.com:0", "example.com:65536", "example.com:44x", "::1:443",
        "[::1]", "[::1:443", "[nothost]:443", "user@example.com:443", "example.com:443/path", ":443",
        "exa mple.com:443", "a..b:443", ".a:443"}) {
    CAPTURE(text);
    CHECK_FALSE(parse_connect_authority(text).has_value());
  }
  // Not [::1]: inet_pton would stop at the NUL (fuzz/fuzz_location checks this for Location too).
  CHECK_FALSE(parse_connect_authority(std::string_view("[::1\0x]:443", 11)).has_value());
}

TEST_CASE("absolute-form URLs give host, port (80 by default) and the origin-form target") {
  auto t = parse_absolute_url("http://Mirror.Example.com/claude/1.2.3?x=1#frag");
  REQUIRE(t.has_value());
  CHECK(t->host == "mirror.example.com");
  CHECK(t->port == 80);
  CHECK(t->origin_form == "/claude/1.2.3?x=1");
  CHECK(t->url() == "http://mirror.example.com/claude/1.2.3?x=1");

  auto v6 = parse_absolute_url("http://[::1]:8080");
  REQUIRE(v6.has_value());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 8080);
  CHECK(v6->origin_form == "/");
  CHECK(v6->url() == "http://[::1]:8080/");

  auto query_only = parse_absolute_url("http://h:81?q");
  REQUIRE(query_only.has_value());
  CHECK(query_only->origin_form == "/?q");
}

TEST_CASE("https:// in absolute form is refused with advice to use CONNECT; other forms are refused too") {
  auto https = parse_absolute_url("https://example.com/");
  REQUIRE_FALSE(https.has_value());
  CHECK(https.error().find("use CONNECT") != std::string::npos);
  CHECK_FALSE(parse_absolute_url("/origin-form").has_value());
  CHECK_FALSE(parse_absolute_url("ftp://example.com/").has_value());
  CHECK_FALSE(parse_absolute_url("http://user:pw@example.com/").has_value());
  CHECK_FALSE(parse_absolute_url("http://example.com:99999/").has_value());
}

TEST_CASE("a Location resolves against the request it answered: absolute, scheme-relative and relative") {
  auto base = parse_absolute_url("http://mirror.example.com/claude/1.2.3/linux-x64?x=1");
  REQUIRE(base.has_value());
  base->tls = true;
  base->port = 443;
  struct Row {
    std::string_view location;
    std::string_view url;
  };
  const Row rows[] = {
      {"https://S3.example.com/b/k?sig=1#frag", "https://s3.example.com/b/k?sig=1"},
      {"http://s3.example.com:8080/b", "http://s3.example.com:8080/b"},
      {"https://s3.example.com:443/b", "https://s3.example.com/b"},  // the default port unsaid
      {"//cdn.example.com/x", "https://cdn.example.com/x"},          // the base's scheme
      {"/other?y=2", "https://mirror.example.com/other?y=2"},
      {"next", "https://mirror.example.com/claude/1.2.3/next"},
      {"[::1]:9/x", "https://mirror.example.com/claude/1.2.3/[::1]:9/x"},  // a relative path, not a host
      // "://" in a query is not a scheme: these stay on the same host.
      {"/login?next=http://x.example.com/y", "https://mirror.example.com/login?next=http://x.example.com/y"},
      {"page?from=https://a.example/",
       "https://mirror.example.com/claude/1.2.3/page?from=https://a.example/"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.location);
    auto resolved = egressd::proxy::resolve_location(row.location, *base);
    REQUIRE(resolved.has_value());
    CHECK(resolved->url() == row.url);
  }
  CHECK_FALSE(egressd::proxy::resolve_location("ftp://x.example.com/", *base).has_value());
  CHECK_FALSE(egressd::proxy::resolve_location("https://user@x.example.com/", *base).has_value());
  CHECK_FALSE(egressd::proxy::resolve_location("", *base).has_value());
  CHECK_FALSE(egressd::proxy::resolve_location("mailto:ops@example.com", *base).has_value());
  CHECK_FALSE(
      egressd::proxy::resolve_location(std::string_view("//[::1\0.evil.example]/", 22), *base).has_value());
}

TEST_CASE("a Host header parses to host and port, the scheme's default when absent") {
  struct Row {
    std::string_view text;
    uint16_t default_port;
    const char* host;
    uint16_t port;
  };
  const Row rows[] = {{"Mirror.Example.com", 443, "mirror.example.com", 443},
                      {"mirror.example.com:8443", 443, "mirror.example.com", 8443},
                      {"[::1]:8080", 80, "::1", 8080},
                      {"127.0.0.1", 80, "127.0.0.1", 80}};
  for (const Row& row : rows) {
    CAPTURE(row.text);
    auto host = egressd::proxy::parse_host_header(row.text, row.default_port);
    REQUIRE(host.has_value());
    CHECK(host->host == row.host);
    CHECK(host->port == row.port);
  }
  for (std::string_view bad : {"a.example.com/x", "user@a.example.com", "a b", "a.example.com:0", ""}) {
    CAPTURE(bad);
    CHECK_FALSE(egressd::proxy::parse_host_header(bad, 443).has_value());
  }
}
