// Re-serializing HTTP heads across the proxy (RFC 9110 §7.6.1, RFC 9112): hop-by-hop and Proxy-* headers
// are dropped, framing is re-stated, and the upstream request names the URL's authority in Host.
// Pure functions; the session does the I/O.
#pragma once

#include <string>
#include <string_view>

#include "proxy/message_parser.h"
#include "proxy/target.h"

namespace egressd::proxy {

enum class BodyFraming { None, ContentLength, Chunked, UntilClose };

struct SerializedHead {
  std::string bytes;
  BodyFraming framing = BodyFraming::None;
  bool close_after = false;  // the connection this head goes out on ends after this message
};

// True for headers that never cross a proxy: Connection, Keep-Alive, Proxy-*, TE, Trailer,
// Transfer-Encoding, Upgrade, and anything else the Connection header names but Content-Length, which
// frames the body that crosses.
bool is_hop_by_hop(std::string_view name, std::string_view connection_header);

// The request as sent upstream: origin-form target, Host from the URL, HTTP/1.1.
// True when the request has no Transfer-Encoding, or exactly `chunked` (in one or several headers).
bool only_chunked_transfer_coding(const MessageHead& request);

SerializedHead upstream_request_head(const MessageHead& request, const Target& target);

// The response as sent to the client. `request_was_head`: no body follows whatever the headers say.
// `client_keep_alive`: the client may send another request on this connection.
SerializedHead client_response_head(const MessageHead& response, const MessageHead& request,
                                    bool request_was_head, bool client_keep_alive);

// Chunked framing of one piece of body, and the end of a chunked body.
std::string chunk(std::string_view bytes);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace egressd::proxy
