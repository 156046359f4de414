#include "proxy/responses.h"

#include <fmt/format.h>

#include "proxy/json_text.h"

namespace egressd::proxy {
namespace {

const char* reason_phrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

// A header value carrying free text: printable ASCII only, so that no client or path can inject headers.
std::string header_safe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  return out;
}

std::string json_response(int status, std::string_view code, std::string_view reason_header,
                          const std::string& body, std::string extra = {}, bool close_after = true) {
  if (!reason_header.empty()) extra += fmt::format("X-Egressd-Reason: {}\r\n", header_safe(reason_header));
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}"
      "Cache-Control: no-store\r\nX-Egressd-Error: {}\r\n{}\r\n{}",
      status, reason_phrase(status), body.size() + 1, close_after ? "Connection: close\r\n" : "", code, extra,
      body + "\n");
}

}  // namespace

std::string connect_established() {
  return "HTTP/1.1 200 Connection Established\r\n\r\n";
}

std::string deny_response(const DenyDetails& deny) {
  JsonObject body;
  body.field("error", deny.error).field("detail", deny.detail).field("reason", deny.reason);
  if (deny.caller != nullptr) {
    body.field("binary", deny.caller->exe).field("pid", static_cast<int64_t>(deny.caller->pid));
  } else {
    body.null_field("binary").null_field("pid");
  }
  body.field("host", deny.host).field("port", int64_t{deny.port});
  if (!deny.redirect_chain_json.empty()) body.raw_field("redirected_by", deny.redirect_chain_json);
  return json_response(403, deny.error, deny.reason, body.str());
}

std::string http_deny_response(const HttpDenyDetails& deny, bool close_after) {
  JsonObject body;
  body.field("error", "policy_denied")
      .field("detail", fmt::format("{} {} not permitted by policy", deny.method, deny.path))
      .field("reason", deny.reason)
      .field("policy", deny.policy)
      .field("rule", deny.http_rule)
      .field("method", deny.method)
      .field("path", deny.path);
  if (deny.caller != nullptr) {
    body.field("binary", deny.caller->exe).field("pid", static_cast<int64_t>(deny.caller->pid));
  } else {
    body.null_field("binary").null_field("pid");
  }
  body.field("host", deny.host).field("port", int64_t{deny.port});
  if (!deny.redirect_chain_json.empty()) body.raw_field("redirected_by", deny.redirect_chain_json);
  return json_response(403, "policy_denied", deny.reason, body.str(),
                       fmt::format("X-Egressd-Policy: {}\r\n", header_safe(deny.policy)), close_after);
}

std::string error_response(const Error& error) {
  JsonObject body;
  body.field("error", error_code(error.kind)).field("detail", error.detail);
  return json_response(http_status(error.kind), error_code(error.kind), error.detail, body.str());
}

}  // namespace egressd::proxy
