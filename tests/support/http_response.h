// Parses the bytes of one HTTP/1.x response as a client received them (from RawClient, or `curl -i`),
// so tests can check the status line, headers and body exactly. Throws std::runtime_error with the text
// when the bytes are not a response.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::test {

struct HttpResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;                                        // "Forbidden"
  std::vector<std::pair<std::string, std::string>> headers;  // in order
  std::string body;  // decoded when chunked; else up to Content-Length, or everything after the head

  // Parses the last response in `bytes` whose status is not 1xx (interim responses are skipped), and
  // with `skip_connect_200`, also a leading "200 Connection established" (curl -p -i prints it).
  static HttpResponse parse(std::string_view bytes, bool skip_connect_200 = false);

  std::optional<std::string> header(std::string_view name) const;  // first, case-insensitive
  size_t header_count(std::string_view name) const;
};

}  // namespace egressd::test
