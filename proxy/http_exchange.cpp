#include "proxy/http_exchange.h"

#include <strings.h>

#include <array>
#include <vector>

#include <fmt/format.h>

namespace egressd::proxy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view item) {
  while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
  while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
  return item;
}

// Does the comma-separated token list contain `token` (case-insensitive)?
bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Every Connection header's value joined, so that tokens in repeated headers count too.
std::string connection_tokens(const MessageHead& head) {
  std::string joined;
  for (const auto& [name, value] : head.headers) {
    if (iequals(name, "connection")) {
      if (!joined.empty()) joined += ",";
      joined += value;
    }
  }
  return joined;
}

constexpr std::array kHopByHop = {
    "connection", "keep-alive",        "proxy-connection", "proxy-authorization", "proxy-authenticate", "te",
    "trailer",    "transfer-encoding", "upgrade"};

}  // namespace

bool is_hop_by_hop(std::string_view name, std::string_view connection_header) {
  for (const char* h : kHopByHop) {
    if (iequals(name, h)) return true;
  }
  if (name.size() > 6 && iequals(name.substr(0, 6), "proxy-")) return true;
  // Content-Length frames the body that is forwarded: dropped because "Connection: content-length" named it,
  // the body would reach the next hop unframed, read as the start of another message (request smuggling).
  if (iequals(name, "content-length")) return false;
  return has_token(connection_header, name);
}

bool only_chunked_transfer_coding(const MessageHead& request) {
  std::vector<std::string_view> codings;
  for (const auto& [name, value] : request.headers) {
    if (!iequals(name, "transfer-encoding")) continue;
    std::string_view list = value;
    while (true) {
      const size_t comma = list.find(',');
      const std::string_view coding = trim(list.substr(0, comma));
      if (!coding.empty()) codings.push_back(coding);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return codings.empty() || (codings.size() == 1 && iequals(codings[0], "chunked"));
}

SerializedHead upstream_request_head(const MessageHead& request, const Target& target) {
  SerializedHead out;
  const std::string connection = connection_tokens(request);
  const bool upgrade = request.upgrade && !request.header("upgrade").empty();
  out.bytes = fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\n", request.method, target.origin_form,
                          target.host_for_header());
  for (const auto& [name, value] : request.headers) {
    if (iequals(name, "host") || is_hop_by_hop(name, connection)) continue;
    out.bytes += fmt::format("{}: {}\r\n", name, value);
  }
  if (request.chunked) {
    out.framing = BodyFraming::Chunked;
    out.bytes += "Transfer-Encoding: chunked\r\n";
  } else if (request.has_content_length) {
    out.framing = BodyFraming::ContentLength;  // the Content-Length header was copied above
  }
  if (upgrade) {
    out.bytes += fmt::format("Connection: Upgrade\r\nUpgrade: {}\r\n", request.header("upgrade"));
  }
  out.bytes += "\r\n";
  return out;
}

SerializedHead client_response_head(const MessageHead& response, const MessageHead& request,
                                    bool request_was_head, bool client_keep_alive) {
  SerializedHead out;
  const std::string connection = connection_tokens(response);
  const int status = response.status;
  const bool switching = status == 101 && request.upgrade;
  const bool no_body = request_was_head || (status >= 100 && status < 200) || status == 204 || status == 304;
  const bool client_is_http11 = request.version_major == 1 && request.version_minor >= 1;

  if (no_body) {
    out.framing = BodyFraming::None;
  } else if (response.chunked) {
    out.framing = client_is_http11 ? BodyFraming::Chunked : BodyFraming::UntilClose;
  } else if (response.has_content_length) {
    out.framing = BodyFraming::ContentLength;
  } else {
    out.framing = BodyFraming::UntilClose;
  }
  const bool interim = status >= 100 && status < 200 && !switching;
  out.close_after = !interim && !switching && (!client_keep_alive || out.framing == BodyFraming::UntilClose);

  out.bytes = fmt::format("HTTP/1.1 {} {}\r\n", status, response.status_text);
  for (const auto& [name, value] : response.headers) {
    if (is_hop_by_hop(name, connection)) continue;
    out.bytes += fmt::format("{}: {}\r\n", name, value);
  }
  if (out.framing == BodyFraming::Chunked) out.bytes += "Transfer-Encoding: chunked\r\n";
  if (switching) {
    out.bytes += fmt::format("Connection: Upgrade\r\nUpgrade: {}\r\n", response.header("upgrade"));
  } else if (out.close_after) {
    out.bytes += "Connection: close\r\n";
  }
  out.bytes += "\r\n";
  return out;
}

std::string chunk(std::string_view bytes) {
  std::string out = fmt::format("{:x}\r\n", bytes.size());
  out.append(bytes);
  out += "\r\n";
  return out;
}

}  // namespace egressd::proxy
