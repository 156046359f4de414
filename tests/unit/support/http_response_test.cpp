#include "tests/support/http_response.h"

#include <doctest/doctest.h>

namespace egressd::test {
namespace {

TEST_CASE("HttpResponse parses a status line, headers in order and a Content-Length body") {
  const HttpResponse response = HttpResponse::parse(
      "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
      "Connection: close\r\n\r\n{}trailing");
  CHECK(response.version == "HTTP/1.1");
  CHECK(response.status == 403);
  CHECK(response.reason == "Forbidden");
  CHECK(response.header("content-type") == "application/json");
  CHECK(response.header_count("Connection") == 1);
  CHECK(response.headers.front().first == "Content-Type");
  CHECK(response.body == "{}");
}

TEST_CASE("HttpResponse decodes a chunked body") {
  const HttpResponse response = HttpResponse::parse(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n");
  CHECK(response.body == "abcde");
}

TEST_CASE("HttpResponse skips interim responses, and the CONNECT 200 when asked") {
  CHECK(HttpResponse::parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").status == 204);
  const std::string tunnel =
      "HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx";
  CHECK(HttpResponse::parse(tunnel).status == 200);
  CHECK(HttpResponse::parse(tunnel, true).status == 404);
}

TEST_CASE("HttpResponse rejects bytes that are not a response, showing them") {
  CHECK_THROWS_WITH(HttpResponse::parse("garbage"), doctest::Contains("garbage"));
  CHECK_THROWS(HttpResponse::parse("HTTP/1.1 abc\r\n\r\n"));
}

}  // namespace
}  // namespace egressd::test
