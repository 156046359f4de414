#include "tests/support/http_response.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace egressd::test {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

[[noreturn]] void fail(const std::string& why, std::string_view bytes) {
  throw std::runtime_error("not an HTTP response (" + why + "): " + std::string(bytes.substr(0, 2000)));
}

// One response head at the start of `bytes`; `rest` gets what follows the blank line.
HttpResponse parse_head(std::string_view bytes, std::string_view& rest) {
  // curl -i prints heads with CRLF; be lenient about bare LF so a test sees the real difference elsewhere.
  size_t end = bytes.find("\r\n\r\n");
  size_t separator = 4;
  if (end == std::string_view::npos) {
    end = bytes.find("\n\n");
    separator = 2;
  }
  if (end == std::string_view::npos) fail("no end of head", bytes);
  const std::string_view head = bytes.substr(0, end);
  rest = bytes.substr(end + separator);
  HttpResponse response;
  size_t line_end = head.find('\n');
  const std::string_view status_line = trim(head.substr(0, line_end));
  const size_t sp1 = status_line.find(' ');
  if (sp1 == std::string_view::npos || !status_line.starts_with("HTTP/")) fail("bad status line", bytes);
  response.version = status_line.substr(0, sp1);
  const std::string_view after = status_line.substr(sp1 + 1);
  const size_t sp2 = after.find(' ');
  const std::string code(after.substr(0, sp2));
  if (code.size() != 3 ||
      !std::all_of(code.begin(), code.end(), [](char c) { return std::isdigit(c) != 0; })) {
    fail("bad status code", bytes);
  }
  response.status = std::stoi(code);
  if (sp2 != std::string_view::npos) response.reason = after.substr(sp2 + 1);
  while (line_end != std::string_view::npos) {
    const size_t start = line_end + 1;
    line_end = head.find('\n', start);
    const std::string_view line =
        trim(head.substr(start, line_end == std::string_view::npos ? line_end : line_end - start));
    if (line.empty()) continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) fail("header line without ':'", bytes);
    response.headers.emplace_back(std::string(line.substr(0, colon)),
                                  std::string(trim(line.substr(colon + 1))));
  }
  return response;
}

std::string decode_chunked(std::string_view bytes) {
  std::string body;
  while (true) {
    const size_t line_end = bytes.find("\r\n");
    if (line_end == std::string_view::npos) fail("truncated chunk size", bytes);
    const size_t size = std::stoul(std::string(bytes.substr(0, line_end)), nullptr, 16);
    bytes.remove_prefix(line_end + 2);
    if (size == 0) return body;
    if (bytes.size() < size + 2) fail("truncated chunk", bytes);
    body.append(bytes.substr(0, size));
    bytes.remove_prefix(size + 2);
  }
}

}  // namespace

HttpResponse HttpResponse::parse(std::string_view bytes, bool skip_connect_200) {
  std::string_view rest;
  HttpResponse response = parse_head(bytes, rest);
  while (response.status / 100 == 1 ||
         (skip_connect_200 && response.status == 200 && rest.starts_with("HTTP/"))) {
    skip_connect_200 = false;
    bytes = rest;
    response = parse_head(bytes, rest);
  }
  const std::optional<std::string> encoding = response.header("Transfer-Encoding");
  const std::optional<std::string> length = response.header("Content-Length");
  if (encoding && iequals(*encoding, "chunked")) {
    response.body = decode_chunked(rest);
  } else if (length) {
    const size_t size = std::stoul(*length);
    response.body = std::string(rest.substr(0, size));
  } else {
    response.body = std::string(rest);
  }
  return response;
}

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

size_t HttpResponse::header_count(std::string_view name) const {
  return static_cast<size_t>(
      std::count_if(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); }));
}

}  // namespace egressd::test
