// MessageParser: strict llhttp (no lenient flags) for one side of a connection, requests or responses.
// It collects the head, hands body bytes to a sink as they arrive, and stops at the points where the
// session must act: the end of a request head, the end of a message, an upgrade (CONNECT, 101).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::proxy {

inline constexpr size_t kMaxHeadBytes = 64 * 1024;
inline constexpr size_t kMaxHeaderCount = 200;
inline constexpr size_t kMaxTargetBytes = 8 * 1024;  // the request-target (URL) alone

struct MessageHead {
  std::string method;  // requests
  std::string url;     // requests: the request-target as sent
  int status = 0;      // responses
  std::string status_text;
  int version_major = 1;
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  bool chunked = false;  // Transfer-Encoding: chunked (llhttp validated the framing)
  bool has_content_length = false;
  bool keep_alive = true;  // llhttp_should_keep_alive at the end of the head
  bool upgrade = false;    // CONNECT, or an Upgrade the parser will stop at

  // The first header with this name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
};

class MessageParser;

// Receives what a parser finds, synchronously, from inside feed().
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // The head is complete. Return true when the message has no body even if its headers suggest one
  // (a response to HEAD). Not called for requests when the parser pauses at heads (see feed()).
  virtual bool on_head(MessageParser& parser, const MessageHead& head) = 0;
  virtual void on_body(MessageParser& parser, std::string_view bytes) = 0;
};

class MessageParser {
 public:
  enum class Event {
    NeedMore,         // every byte was consumed
    HeadComplete,     // requests: the head is complete; the session decides, then calls resume()
    MessageComplete,  // a whole message ended; call resume() before feeding the next one
    Upgrade,          // CONNECT or protocol switch: bytes after `consumed` belong to the tunnel
    HeadTooLarge,
    TargetTooLong,  // the request-target passed kMaxTargetBytes
    Invalid,        // malformed; error() says why
  };
  struct Step {
    Event event = Event::NeedMore;
    size_t consumed = 0;
  };

  // `pause_at_head`: stop after each request head (requests); otherwise the sink's on_head is called.
  MessageParser(llhttp_type_t type, MessageSink& sink, bool pause_at_head);
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  Step feed(std::string_view bytes);
  Step finish();  // the peer closed: completes a close-delimited message, or reports truncation
  void resume();  // after HeadComplete or MessageComplete

  const MessageHead& head() const { return head_; }
  const std::string& error() const { return error_; }
  bool in_head() const { return !head_done_; }
  bool needs_eof() const { return llhttp_message_needs_eof(&parser_) != 0; }
  bool should_keep_alive() const { return llhttp_should_keep_alive(&parser_) != 0; }

 private:
  static int uv_on_message_begin(llhttp_t* p) noexcept;
  static int uv_on_method(llhttp_t* p, const char* at, size_t n) noexcept;
  static int uv_on_url(llhttp_t* p, const char* at, size_t n) noexcept;
  static int uv_on_status(llhttp_t* p, const char* at, size_t n) noexcept;
  static int uv_on_header_field(llhttp_t* p, const char* at, size_t n) noexcept;
  static int uv_on_header_value(llhttp_t* p, const char* at, size_t n) noexcept;
  static int uv_on_header_value_complete(llhttp_t* p) noexcept;
  static int uv_on_headers_complete(llhttp_t* p) noexcept;
  static int uv_on_body(llhttp_t* p, const char* at, size_t n) noexcept;
  static int uv_on_message_complete(llhttp_t* p) noexcept;
  Step after_execute(llhttp_errno_t rc, const char* start, size_t len);
  // Counts head bytes seen through callbacks; false once the head passes kMaxHeadBytes.
  bool account(size_t n) { return (head_accounted_ += n) <= kMaxHeadBytes; }
  int too_large() {
    head_too_large_ = true;
    return HPE_USER;
  }

  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  MessageSink& sink_;
  bool pause_at_head_;
  MessageHead head_;
  std::string field_;
  std::string value_;
  bool in_value_ = false;
  bool head_done_ = false;
  size_t head_bytes_ = 0;      // raw bytes fed while the head was incomplete
  size_t head_accounted_ = 0;  // bytes of method, target, fields and values
  Event pause_reason_ = Event::NeedMore;
  std::string error_;
  std::string user_error_;  // set by a callback that rejects what llhttp accepted
  bool head_too_large_ = false;
  bool target_too_long_ = false;
};

}  // namespace egressd::proxy
