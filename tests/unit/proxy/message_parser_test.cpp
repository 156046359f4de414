#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/message_parser.h"

using namespace egressd::proxy;
using Event = MessageParser::Event;

namespace {

struct RecordingSink final : MessageSink {
  std::vector<int> statuses;
  std::string body;
  bool no_body = false;
  bool on_head(MessageParser&, const MessageHead& head) override {
    statuses.push_back(head.status);
    return no_body;
  }
  void on_body(MessageParser&, std::string_view bytes) override { body.append(bytes); }
};

}  // namespace

TEST_CASE("a request head pauses the parser; the body and the next pipelined request wait for resume()") {
  RecordingSink sink;
  MessageParser parser(HTTP_REQUEST, sink, true);
  const std::string wire =
      "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET http://b/ HTTP/1.1\r\nHost: "
      "b\r\n\r\n";
  std::string_view rest = wire;
  auto step = parser.feed(rest);
  CHECK(step.event == Event::HeadComplete);
  CHECK(parser.head().method == "POST");
  CHECK(parser.head().url == "http://a/");
  CHECK(parser.head().has_content_length);
  rest.remove_prefix(step.consumed);
  CHECK(rest.starts_with("hello"));

  parser.resume();
  step = parser.feed(rest);
  CHECK(step.event == Event::MessageComplete);
  CHECK(sink.body == "hello");
  rest.remove_prefix(step.consumed);
  CHECK(rest.starts_with("GET http://b/"));

  parser.resume();
  step = parser.feed(rest);
  CHECK(step.event == Event::HeadComplete);
  CHECK(parser.head().url == "http://b/");
  CHECK(parser.head().header("HOST") == "b");
}

TEST_CASE("CONNECT pauses at its head and the bytes after it belong to the tunnel") {
  RecordingSink sink;
  MessageParser parser(HTTP_REQUEST, sink, true);
  const std::string wire = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01";
  const auto step = parser.feed(wire);
  CHECK(step.event == Event::HeadComplete);
  CHECK(parser.head().method == "CONNECT");
  CHECK(wire.substr(step.consumed) == "\x16\x03\x01");
}

TEST_CASE("strict parsing: smuggling shapes and malformed heads are invalid") {
  const char* bad[] = {
      "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET http://a/ HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
      "GET http://a/ HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
      "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "G@T http://a/ HTTP/1.1\r\n\r\n",
      "GET http://a/ HTTP/9.9\r\n\r\n",
  };
  for (const char* wire : bad) {
    const std::string shown(wire);
    CAPTURE(shown);
    RecordingSink sink;
    MessageParser parser(HTTP_REQUEST, sink, true);
    auto step = parser.feed(wire);
    if (step.event == Event::HeadComplete) {  // some errors surface only when the body starts
      parser.resume();
      step = parser.feed(std::string_view(wire).substr(step.consumed));
    }
    CHECK(step.event == Event::Invalid);
    CHECK_FALSE(parser.error().empty());
  }
}

TEST_CASE("a head over the size limit, in one piece or many, is reported as too large") {
  const std::string big_header = "X-Big: " + std::string(kMaxHeadBytes, 'a') + "\r\n";
  RecordingSink sink;
  MessageParser parser(HTTP_REQUEST, sink, true);
  CHECK(parser.feed("GET http://a/ HTTP/1.1\r\n" + big_header + "\r\n").event == Event::HeadTooLarge);

  RecordingSink sink2;
  MessageParser many(HTTP_REQUEST, sink2, true);
  auto step = many.feed("GET http://a/ HTTP/1.1\r\n");
  for (size_t i = 0; i < kMaxHeaderCount + 5 && step.event == Event::NeedMore; ++i) {
    step = many.feed("X-H: v\r\n");
  }
  CHECK(step.event == Event::HeadTooLarge);
}

TEST_CASE("responses: interim 100 Continue, then the final response with a chunked body") {
  RecordingSink sink;
  MessageParser parser(HTTP_RESPONSE, sink, false);
  std::string_view wire =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  auto step = parser.feed(wire);
  CHECK(step.event == Event::MessageComplete);
  CHECK(parser.head().status == 100);
  wire.remove_prefix(step.consumed);
  parser.resume();
  step = parser.feed(wire);
  CHECK(step.event == Event::MessageComplete);
  CHECK(sink.statuses == std::vector<int>{100, 200});
  CHECK(sink.body == "abc");
}

TEST_CASE("a response to HEAD has no body even with a Content-Length") {
  RecordingSink sink;
  sink.no_body = true;
  MessageParser parser(HTTP_RESPONSE, sink, false);
  const auto step = parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
  CHECK(step.event == Event::MessageComplete);
  CHECK(sink.body.empty());
}

TEST_CASE("a close-delimited response completes at EOF") {
  RecordingSink sink;
  MessageParser parser(HTTP_RESPONSE, sink, false);
  CHECK(parser.feed("HTTP/1.1 200 OK\r\n\r\npartial").event == Event::NeedMore);
  CHECK(parser.needs_eof());
  CHECK(parser.finish().event == Event::MessageComplete);
  CHECK(sink.body == "partial");
}
