// Fuzz target: the request front end, as a client's bytes reach it. The input after its first byte is fed to
// MessageParser (strict llhttp, requests, pausing at each head) in pieces of the size the first byte names
// (0: all at once), and each complete head goes where the session sends it: the CONNECT authority or the
// absolute-form URL parser, the Host header parser, and the upstream re-serialization.
#include <llhttp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "common/check.h"
#include "proxy/http_exchange.h"
#include "proxy/message_parser.h"
#include "proxy/target.h"

namespace {

using egressd::proxy::MessageHead;
using egressd::proxy::MessageParser;
using egressd::proxy::Target;
using Event = MessageParser::Event;

// Collects the body of the current message (requests pause at heads, so on_head is never called).
class BodySink final : public egressd::proxy::MessageSink {
 public:
  bool on_head(MessageParser&, const MessageHead&) override { return false; }
  void on_body(MessageParser&, std::string_view bytes) override { body.append(bytes); }
  std::string body;
};

bool is_tchar(char c) {  // RFC 9110 §5.6.2
  const auto byte = static_cast<unsigned char>(c);
  return (byte >= '0' && byte <= '9') || (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool same_target(const Target& a, const Target& b) {
  return a.host == b.host && a.port == b.port && a.origin_form == b.origin_form && a.is_ipv6 == b.is_ipv6 &&
         a.tls == b.tls;
}

void check_target(const Target& target) {
  EGRESSD_CHECK(!target.host.empty());
  EGRESSD_CHECK(target.port != 0);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) {
             return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
           };
           return lower(x) == lower(y);
         });
}

// What goes upstream must parse, strictly, as the request the policy decided on: the same method, the
// target's origin-form, one Host naming the target, then the request's end-to-end headers unchanged and in
// order, then the framing and upgrade headers the proxy restates.
void check_upstream_head(const MessageHead& request, const Target& target) {
  const egressd::proxy::SerializedHead out = egressd::proxy::upstream_request_head(request, target);
  BodySink sink;
  MessageParser parser(HTTP_REQUEST, sink, /*pause_at_head=*/true);
  const MessageParser::Step step = parser.feed(out.bytes);
  EGRESSD_CHECK(step.event == Event::HeadComplete);
  EGRESSD_CHECK(step.consumed == out.bytes.size());
  const MessageHead& sent = parser.head();
  EGRESSD_CHECK(sent.method == request.method);
  EGRESSD_CHECK(sent.url == target.origin_form);
  EGRESSD_CHECK(sent.chunked == request.chunked);
  EGRESSD_CHECK(sent.has_content_length == request.has_content_length);  // the body stays framed
  EGRESSD_CHECK(sent.header("content-length") == request.header("content-length"));

  std::string connection;  // every Connection header's tokens count
  for (const auto& [name, value] : request.headers) {
    if (iequals(name, "connection")) connection += (connection.empty() ? "" : ",") + value;
  }
  std::vector<std::pair<std::string, std::string>> expected = {{"Host", target.host_for_header()}};
  for (const auto& header : request.headers) {
    if (!iequals(header.first, "host") && !egressd::proxy::is_hop_by_hop(header.first, connection)) {
      expected.push_back(header);
    }
  }
  if (request.chunked) expected.emplace_back("Transfer-Encoding", "chunked");
  if (request.upgrade && !request.header("upgrade").empty()) {
    expected.emplace_back("Connection", "Upgrade");
    expected.emplace_back("Upgrade", std::string(request.header("upgrade")));
  }
  EGRESSD_CHECK(sent.headers == expected);
}

// The checks the session's on_request_head() relies on, for a head the parser accepted.
void check_head(const MessageHead& head) {
  EGRESSD_CHECK(!head.method.empty());
  EGRESSD_CHECK(head.url.size() <= egressd::proxy::kMaxTargetBytes);
  EGRESSD_CHECK(head.headers.size() <= egressd::proxy::kMaxHeaderCount);
  for (const auto& [name, value] : head.headers) {
    EGRESSD_CHECK(!name.empty() && std::all_of(name.begin(), name.end(), is_tchar));
  }
  if (head.method == "CONNECT") {
    auto target = egressd::proxy::parse_connect_authority(head.url);
    if (!target) {
      EGRESSD_CHECK(!target.error().empty());
      return;
    }
    check_target(*target);
    EGRESSD_CHECK(target->origin_form.empty() && !target->tls);
    auto again = egressd::proxy::parse_connect_authority(target->authority());
    EGRESSD_CHECK(again.has_value() && same_target(*again, *target));
    return;
  }
  if (const std::string_view host = head.header("host"); !host.empty()) {
    auto named = egressd::proxy::parse_host_header(host, 80);
    if (named) check_target(*named);
  }
  auto target = egressd::proxy::parse_absolute_url(head.url);
  if (!target) {
    EGRESSD_CHECK(!target.error().empty());
    return;
  }
  check_target(*target);
  EGRESSD_CHECK(!target->tls && target->origin_form.starts_with('/'));
  EGRESSD_CHECK(target->origin_form.find('#') == std::string::npos);
  auto again = egressd::proxy::parse_absolute_url(target->url());
  EGRESSD_CHECK(again.has_value() && same_target(*again, *target));
  check_upstream_head(head, *target);
}

std::string describe(const MessageHead& head) {
  std::string out = fmt::format("{} {} {}.{} chunked={} cl={} keep_alive={} upgrade={}\n", head.method,
                                head.url, head.version_major, head.version_minor, head.chunked,
                                head.has_content_length, head.keep_alive, head.upgrade);
  for (const auto& [name, value] : head.headers) out += fmt::format("{}: {}\n", name, value);
  return out;
}

// One thing the parser reported, at an offset into the input. Errors compare equal whatever their kind:
// which limit or flaw is reported first may depend on where the input was split.
struct Report {
  Event event;
  std::size_t offset;
  std::string detail;
  bool is_error() const {
    return event == Event::HeadTooLarge || event == Event::TargetTooLong || event == Event::Invalid;
  }
  friend bool operator==(const Report& a, const Report& b) {
    if (a.is_error() || b.is_error()) return a.is_error() && b.is_error();
    return a.event == b.event && a.offset == b.offset && a.detail == b.detail;
  }
};

// Feeds `input` in pieces of `piece` bytes as the session does: resume() after a head or a message, stop at
// an upgrade or an error, and finish() at the end of the input.
std::vector<Report> run(std::string_view input, std::size_t piece) {
  BodySink sink;
  MessageParser parser(HTTP_REQUEST, sink, /*pause_at_head=*/true);
  std::vector<Report> reports;
  std::size_t offset = 0;
  int idle_steps = 0;  // steps in a row that consumed nothing
  while (offset < input.size()) {
    std::string_view chunk = input.substr(offset, piece);
    while (true) {
      const MessageParser::Step step = parser.feed(chunk);
      EGRESSD_CHECK(step.consumed <= chunk.size());
      chunk.remove_prefix(step.consumed);
      offset += step.consumed;
      idle_steps = step.consumed == 0 ? idle_steps + 1 : 0;
      EGRESSD_CHECK(idle_steps < 8);  // a parser that pauses again and again without moving is stuck
      switch (step.event) {
        case Event::NeedMore:
          EGRESSD_CHECK(chunk.empty());
          break;
        case Event::HeadComplete:
          EGRESSD_CHECK(!parser.in_head());
          check_head(parser.head());
          reports.push_back({step.event, offset, describe(parser.head())});
          parser.resume();
          break;
        case Event::MessageComplete:
          reports.push_back({step.event, offset, std::exchange(sink.body, {})});
          parser.resume();
          break;
        case Event::Upgrade:  // the rest belongs to the tunnel
          reports.push_back({step.event, offset, std::exchange(sink.body, {})});
          return reports;
        case Event::HeadTooLarge:
        case Event::TargetTooLong:
        case Event::Invalid:
          reports.push_back({step.event, offset, parser.error()});
          return reports;
      }
      if (step.event == Event::NeedMore || chunk.empty()) break;
    }
  }
  const MessageParser::Step end = parser.finish();
  EGRESSD_CHECK(end.consumed == 0);
  reports.push_back({end.event, offset, end.event == Event::Invalid ? std::string() : sink.body});
  return reports;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t piece = data[0] == 0 ? input.size() + 1 : data[0];
  const std::vector<Report> whole = run(input, input.size() + 1);
  if (piece <= input.size()) {
    const std::vector<Report> pieces = run(input, piece);
    // Where TCP splits a request must not change what it is. Past kMaxHeadBytes the raw-byte bound on a
    // head is checked per read, so a split may legitimately report HeadTooLarge sooner.
    if (input.size() < egressd::proxy::kMaxHeadBytes) EGRESSD_CHECK(whole == pieces);
  }
  return 0;
}
