// Errors of the data plane: a kind (which decides the HTTP status) and a side (who caused it, which
// decides blame and log level). The data plane never throws; failures travel as these values.
#pragma once

#include <string>

namespace egressd::proxy {

enum class ErrorKind {
  BadRequest,
  HeadTooLarge,
  TargetTooLong,
  TooManyConnections,
  UnsupportedTransferCoding,
  Denied,
  CallerUnknown,
  DnsFailed,
  ConnectFailed,
  UpstreamFailed,
  UpstreamTlsFailed,
  Timeout,
  Internal
};
enum class Side { Client, Upstream, Proxy };

struct Error {
  ErrorKind kind = ErrorKind::Internal;
  Side side = Side::Proxy;
  std::string detail;
};

int http_status(ErrorKind kind);
const char* error_code(ErrorKind kind);  // the JSON body's "error" value, e.g. "policy_denied"
const char* side_name(Side side);

}  // namespace egressd::proxy
