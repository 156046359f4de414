// policy/lint.cpp keeps its own list of the methods that can reach HTTP rules, since policy/ does not see
// llhttp. These tests hold that list against the request parser the proxy really runs.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "policy/lint.h"
#include "proxy/message_parser.h"

using namespace egressd::proxy;
using Event = MessageParser::Event;

namespace {

struct NullSink final : MessageSink {
  bool on_head(MessageParser&, const MessageHead&) override { return false; }
  void on_body(MessageParser&, std::string_view) override {}
};

// Whether the strict parser takes "METHOD /x HTTP/1.1" as a request head.
bool parser_accepts(const std::string& method) {
  NullSink sink;
  MessageParser parser(HTTP_REQUEST, sink, true);
  return parser.feed(method + " /x HTTP/1.1\r\nHost: a\r\n\r\n").event == Event::HeadComplete;
}

std::vector<std::string> http_methods() {
  std::vector<std::string> out;
#define EGRESSD_METHOD_NAME(num, name, string) out.push_back(#string);
  HTTP_METHOD_MAP(EGRESSD_METHOD_NAME)
#undef EGRESSD_METHOD_NAME
  return out;
}

std::vector<std::string> rtsp_methods() {
  std::vector<std::string> out;
#define EGRESSD_METHOD_NAME(num, name, string) out.push_back(#string);
  RTSP_METHOD_MAP(EGRESSD_METHOD_NAME)
#undef EGRESSD_METHOD_NAME
  return out;
}

}  // namespace

TEST_CASE("every HTTP method llhttp parses reaches HTTP rules, CONNECT (decided per connection) aside") {
  const std::vector<std::string> methods = http_methods();
  REQUIRE(methods.size() > 30);
  for (const std::string& method : methods) {
    CAPTURE(method);
    CHECK(parser_accepts(method));
    CHECK(egressd::policy::http_method_reaches_rules(method) == (method != "CONNECT"));
  }
}

TEST_CASE("a method lint says never reaches HTTP rules is one the request parser refuses") {
  const std::vector<std::string> http = http_methods();
  std::vector<std::string> others = {"FROB", "BREW", "GETS", "get", "QUERY"};
  for (const std::string& method : rtsp_methods()) {
    if (std::find(http.begin(), http.end(), method) == http.end()) others.push_back(method);
  }
  for (const std::string& method : others) {
    CAPTURE(method);
    CHECK_FALSE(egressd::policy::http_method_reaches_rules(method));
    CHECK_FALSE(parser_accepts(method));
  }
}
