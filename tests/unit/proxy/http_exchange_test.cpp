#include <doctest/doctest.h>

#include <string>

#include "proxy/http_exchange.h"
#include "proxy/message_parser.h"

using namespace egressd::proxy;

namespace {

struct NullSink final : MessageSink {
  bool on_head(MessageParser&, const MessageHead&) override { return false; }
  void on_body(MessageParser&, std::string_view) override {}
};

MessageHead parse_request(const std::string& text) {
  NullSink sink;
  MessageParser parser(HTTP_REQUEST, sink, /*pause_at_head=*/true);
  const auto step = parser.feed(text);
  REQUIRE(step.event == MessageParser::Event::HeadComplete);
  return parser.head();
}

}  // namespace

TEST_CASE("the upstream request drops hop-by-hop and Proxy-* headers and names the URL authority in Host") {
  const auto head = parse_request(
      "GET http://origin.test:8080/a?b HTTP/1.1\r\nHost: evil.test\r\nProxy-Authorization: Basic eA==\r\n"
      "Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n"
      "TE: trailers\r\nAccept: */*\r\nX-Kept: yes\r\n\r\n");
  auto target = parse_absolute_url(head.url);
  REQUIRE(target.has_value());
  const auto out = upstream_request_head(head, *target);
  CHECK(out.bytes == "GET /a?b HTTP/1.1\r\nHost: origin.test:8080\r\nAccept: */*\r\nX-Kept: yes\r\n\r\n");
  CHECK(out.framing == BodyFraming::None);
}

TEST_CASE("request bodies keep their framing: Content-Length as is, chunked re-chunked") {
  const auto with_length = parse_request("POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
  const auto target = parse_absolute_url(with_length.url);
  REQUIRE(target.has_value());
  auto out = upstream_request_head(with_length, *target);
  CHECK(out.framing == BodyFraming::ContentLength);
  CHECK(out.bytes.find("Content-Length: 3\r\n") != std::string::npos);

  const auto chunked =
      parse_request("POST http://h/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  out = upstream_request_head(chunked, *target);
  CHECK(out.framing == BodyFraming::Chunked);
  CHECK(out.bytes.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(chunk("hello") == "5\r\nhello\r\n");
}

TEST_CASE("only plain chunked is accepted as a request's transfer coding") {
  const auto head = [](const std::string& headers) {
    return parse_request("POST http://a.example/ HTTP/1.1\r\nHost: a.example\r\n" + headers + "\r\n");
  };
  CHECK(only_chunked_transfer_coding(head("Content-Length: 0\r\n")));
  CHECK(only_chunked_transfer_coding(head("Transfer-Encoding: chunked\r\n")));
  CHECK(only_chunked_transfer_coding(head("Transfer-Encoding: Chunked \r\n")));
  CHECK_FALSE(only_chunked_transfer_coding(head("Transfer-Encoding: gzip, chunked\r\n")));
  CHECK_FALSE(
      only_chunked_transfer_coding(head("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")));
}

TEST_CASE("a Connection header naming Content-Length does not unframe the body it announces") {
  // Without its Content-Length the upstream would read this body as a second request nobody decided on.
  const auto request = parse_request(
      "POST http://h/ HTTP/1.1\r\nHost: h\r\nConnection: content-length\r\nContent-Length: 27\r\n\r\n");
  const auto target = parse_absolute_url(request.url);
  REQUIRE(target.has_value());
  const auto out = upstream_request_head(request, *target);
  CHECK(out.framing == BodyFraming::ContentLength);
  CHECK(out.bytes == "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 27\r\n\r\n");

  MessageHead response;
  response.status = 200;
  response.status_text = "OK";
  response.has_content_length = true;
  response.headers = {{"Connection", "Content-Length"}, {"Content-Length", "5"}};
  const auto down = client_response_head(response, request, false, true);
  CHECK(down.framing == BodyFraming::ContentLength);
  CHECK(down.bytes == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
}

TEST_CASE("responses: close-delimited bodies close the client connection; HEAD and 304 carry no body") {
  const auto request = parse_request("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n");
  MessageHead response;
  response.status = 200;
  response.status_text = "OK";
  response.headers = {{"Content-Type", "text/plain"}, {"Connection", "close"}};
  auto out = client_response_head(response, request, false, true);
  CHECK(out.framing == BodyFraming::UntilClose);
  CHECK(out.close_after);
  CHECK(out.bytes == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");

  response.has_content_length = true;
  response.headers = {{"Content-Length", "10"}};
  out = client_response_head(response, request, /*request_was_head=*/true, true);
  CHECK(out.framing == BodyFraming::None);
  CHECK_FALSE(out.close_after);

  response.status = 304;
  out = client_response_head(response, request, false, true);
  CHECK(out.framing == BodyFraming::None);

  response.status = 200;
  response.has_content_length = false;
  response.chunked = true;
  response.headers = {{"Transfer-Encoding", "chunked"}};
  out = client_response_head(response, request, false, true);
  CHECK(out.framing == BodyFraming::Chunked);
  CHECK(out.bytes == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}
