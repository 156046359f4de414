#include "proxy/error.h"

namespace egressd::proxy {

int http_status(ErrorKind kind) {
  switch (kind) {  // no default: -Wswitch flags any new kind here
    case ErrorKind::BadRequest:
      return 400;
    case ErrorKind::HeadTooLarge:
      return 431;
    case ErrorKind::TargetTooLong:
      return 414;
    case ErrorKind::TooManyConnections:
      return 503;
    case ErrorKind::UnsupportedTransferCoding:
      return 501;
    case ErrorKind::Denied:
    case ErrorKind::CallerUnknown:
      return 403;
    case ErrorKind::DnsFailed:
    case ErrorKind::ConnectFailed:
    case ErrorKind::UpstreamFailed:
    case ErrorKind::UpstreamTlsFailed:
      return 502;
    case ErrorKind::Timeout:
      return 504;
    case ErrorKind::Internal:
      return 500;
  }
  return 500;
}

const char* error_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::BadRequest:
      return "bad_request";
    case ErrorKind::HeadTooLarge:
      return "request_header_too_large";
    case ErrorKind::TargetTooLong:
      return "uri_too_long";
    case ErrorKind::TooManyConnections:
      return "too_many_connections";
    case ErrorKind::UnsupportedTransferCoding:
      return "unsupported_transfer_encoding";
    case ErrorKind::Denied:
    case ErrorKind::CallerUnknown:
      return "policy_denied";
    case ErrorKind::DnsFailed:
      return "dns_failed";
    case ErrorKind::ConnectFailed:
      return "upstream_unreachable";
    case ErrorKind::UpstreamFailed:
      return "upstream_failed";
    case ErrorKind::UpstreamTlsFailed:
      return "upstream_tls_failed";
    case ErrorKind::Timeout:
      return "timeout";
    case ErrorKind::Internal:
      return "internal_error";
  }
  return "internal_error";
}

const char* side_name(Side side) {
  switch (side) {
    case Side::Client:
      return "client";
    case Side::Upstream:
      return "upstream";
    case Side::Proxy:
      return "proxy";
  }
  return "proxy";
}

}  // namespace egressd::proxy
