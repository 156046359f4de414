// What every e2e scenario shares: the real curl, the test binary's own path, and the two ways of asking
// egressd for something (a CONNECT tunnel, an absolute-form request) reduced to the status it answered.
#pragma once

#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/egressd.h"
#include "tests/support/process.h"

namespace egressd::test::e2e {

using namespace std::chrono_literals;

// /usr/bin/curl as /proc/PID/exe reports it. Every curl run starts with -q (no ~/.curlrc).
inline const std::string& curl() {
  static const std::string path = real_path_of("curl");
  return path;
}

// This test binary (what egressd sees behind a RawClient): listed by no policy unless a test says so.
inline const std::string& self_exe() {
  static const std::string path = real_path_of("/proc/self/exe");
  return path;
}

// The status egressd answered `client`'s CONNECT for `url` with ("200", "403", ...).
inline std::string connect_status(const std::string& client, const Egressd& egressd, const std::string& url) {
  return run({client, "-q", "-sS", "-p", "--proxy", egressd.url(), "-o", "/dev/null", "-w", "%{http_connect}",
              url})
      .out;
}

// The status of `client`'s plain-HTTP (absolute-form) request for `url` through egressd.
inline std::string http_status(const std::string& client, const Egressd& egressd, const std::string& url) {
  return run({client, "-q", "-sS", "--proxy", egressd.url(), "-o", "/dev/null", "-w", "%{http_code}", url})
      .out;
}

// The address egressd printed for --metrics ("127.0.0.1:PORT").
inline std::string metrics_address(const Egressd& egressd) {
  const std::string text = egressd.stderr_text();
  const std::string marker = "metrics on http://";
  const size_t at = text.find(marker);
  REQUIRE_MESSAGE(at != std::string::npos, text);
  const size_t start = at + marker.size();
  return text.substr(start, text.find("/metrics", start) - start);
}

// The bytes of a CONNECT for `authority` ("127.0.0.1:8080"), for a RawClient.
inline std::string connect_request(const std::string& authority) {
  return "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
}

// What curl made of an absolute-form GET through egressd: the status egressd or the origin answered
// ("" if none), the body (egressd's JSON when it refused), curl's exit code.
struct Got {
  std::string status;
  std::string body;
  int exit_code = 0;
};
// Run in egressd's network (Egressd::in_network), with `extra` curl options before the URL.
inline Got get_through(const Egressd& egressd, const std::string& url, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{curl(), "-q", "-sS", "--proxy", egressd.url(), "-w", "\n%{http_code}"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  const RunResult result = run(egressd.in_network(argv));
  const size_t newline = result.out.rfind('\n');
  if (newline == std::string::npos) return {"", result.out + result.err, result.exit_code};
  return {result.out.substr(newline + 1), result.out.substr(0, newline), result.exit_code};
}

// `text` with every byte but RFC 3986's unreserved ones as %XX: a whole URL as one query value.
inline std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

}  // namespace egressd::test::e2e
