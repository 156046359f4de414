#include "proxy/message_parser.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <fmt/format.h>

namespace egressd::proxy {
namespace {

MessageParser& self_of(llhttp_t* p) {
  return *static_cast<MessageParser*>(p->data);
}

// RFC 9110 §5.6.2 token characters.
bool is_tchar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c)) != 0) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

}  // namespace

std::string_view MessageHead::header(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (field.size() == name.size() && strncasecmp(field.data(), name.data(), name.size()) == 0) return value;
  }
  return {};
}

MessageParser::MessageParser(llhttp_type_t type, MessageSink& sink, bool pause_at_head)
    : sink_(sink), pause_at_head_(pause_at_head) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &MessageParser::uv_on_message_begin;
  settings_.on_method = &MessageParser::uv_on_method;
  settings_.on_url = &MessageParser::uv_on_url;
  settings_.on_status = &MessageParser::uv_on_status;
  settings_.on_header_field = &MessageParser::uv_on_header_field;
  settings_.on_header_value = &MessageParser::uv_on_header_value;
  settings_.on_header_value_complete = &MessageParser::uv_on_header_value_complete;
  settings_.on_headers_complete = &MessageParser::uv_on_headers_complete;
  settings_.on_body = &MessageParser::uv_on_body;
  settings_.on_message_complete = &MessageParser::uv_on_message_complete;
  llhttp_init(&parser_, type, &settings_);  // strict: no llhttp_set_lenient_* call, ever
  parser_.data = this;
}

int MessageParser::uv_on_message_begin(llhttp_t* p) noexcept {
  auto& self = self_of(p);
  self.head_ = MessageHead{};
  self.field_.clear();
  self.value_.clear();
  self.in_value_ = false;
  self.head_done_ = false;
  self.head_bytes_ = 0;
  self.head_accounted_ = 0;
  return 0;
}

int MessageParser::uv_on_method(llhttp_t* p, const char* at, size_t n) noexcept {
  auto& self = self_of(p);
  if (!self.account(n)) return self.too_large();
  self.head_.method.append(at, n);
  return 0;
}

int MessageParser::uv_on_url(llhttp_t* p, const char* at, size_t n) noexcept {
  auto& self = self_of(p);
  if (!self.account(n)) return self.too_large();
  if (self.head_.url.size() + n > kMaxTargetBytes) {
    self.target_too_long_ = true;
    return HPE_USER;
  }
  self.head_.url.append(at, n);
  return 0;
}

int MessageParser::uv_on_status(llhttp_t* p, const char* at, size_t n) noexcept {
  auto& self = self_of(p);
  if (!self.account(n)) return self.too_large();
  self.head_.status_text.append(at, n);
  return 0;
}

int MessageParser::uv_on_header_field(llhttp_t* p, const char* at, size_t n) noexcept {
  auto& self = self_of(p);
  if (self.in_value_) {
    self.field_.clear();
    self.value_.clear();
    self.in_value_ = false;
  }
  if (!self.account(n)) return self.too_large();
  self.field_.append(at, n);
  return 0;
}

int MessageParser::uv_on_header_value(llhttp_t* p, const char* at, size_t n) noexcept {
  auto& self = self_of(p);
  self.in_value_ = true;
  if (!self.account(n)) return self.too_large();
  self.value_.append(at, n);
  return 0;
}

int MessageParser::uv_on_header_value_complete(llhttp_t* p) noexcept {
  auto& self = self_of(p);
  if (self.head_.headers.size() >= kMaxHeaderCount || !self.account(4)) return self.too_large();
  // llhttp 8 passes "Name :" with the space kept in the name; an upstream may trim it (RFC 9112 §5.1
  // says reject). A header we would re-send under a name the upstream reads differently is smuggling.
  if (self.field_.empty() || !std::all_of(self.field_.begin(), self.field_.end(), is_tchar)) {
    self.user_error_ = fmt::format("invalid header name '{}'", self.field_);
    return HPE_USER;
  }
  self.head_.headers.emplace_back(std::move(self.field_), std::move(self.value_));
  self.field_.clear();
  self.value_.clear();
  self.in_value_ = true;  // the next field starts a new pair
  return 0;
}

int MessageParser::uv_on_headers_complete(llhttp_t* p) noexcept {
  auto& self = self_of(p);
  auto& head = self.head_;
  head.version_major = llhttp_get_http_major(p);
  head.version_minor = llhttp_get_http_minor(p);
  head.status = llhttp_get_status_code(p);
  head.chunked = (p->flags & F_CHUNKED) != 0;
  head.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
  head.keep_alive = llhttp_should_keep_alive(p) != 0;
  head.upgrade = p->upgrade != 0;
  self.head_done_ = true;
  if (self.pause_at_head_) {
    self.pause_reason_ = Event::HeadComplete;
    return HPE_PAUSED;
  }
  return self.sink_.on_head(self, head) ? 1 : 0;  // 1: this message has no body
}

int MessageParser::uv_on_body(llhttp_t* p, const char* at, size_t n) noexcept {
  auto& self = self_of(p);
  self.sink_.on_body(self, std::string_view(at, n));
  return 0;
}

int MessageParser::uv_on_message_complete(llhttp_t* p) noexcept {
  self_of(p).pause_reason_ = Event::MessageComplete;
  return HPE_PAUSED;
}

MessageParser::Step MessageParser::after_execute(llhttp_errno_t rc, const char* start, size_t len) {
  const char* pos = llhttp_get_error_pos(&parser_);
  const bool pos_inside = pos != nullptr && pos >= start && pos <= start + len;
  const size_t consumed = rc == HPE_OK ? len : pos_inside ? static_cast<size_t>(pos - start) : 0;
  if (!head_done_) {
    head_bytes_ += consumed;  // also bounds bytes that produce no callback (blank lines before a request)
    if (head_bytes_ > kMaxHeadBytes) return {Event::HeadTooLarge, consumed};
  }
  // A callback's own verdict wins: llhttp reports it as HPE_USER or as HPE_CB_<callback>.
  if (rc != HPE_OK && rc != HPE_PAUSED && rc != HPE_PAUSED_UPGRADE) {
    if (!user_error_.empty()) {
      error_ = user_error_;
      return {Event::Invalid, consumed};
    }
    if (head_too_large_) return {Event::HeadTooLarge, consumed};
    if (target_too_long_) return {Event::TargetTooLong, consumed};
  }
  switch (rc) {
    case HPE_OK:
      return {Event::NeedMore, consumed};
    case HPE_PAUSED:
      return {std::exchange(pause_reason_, Event::NeedMore), consumed};
    case HPE_PAUSED_UPGRADE:
      return {Event::Upgrade, consumed};
    default:
      error_ = fmt::format("{}: {}", llhttp_errno_name(rc), llhttp_get_error_reason(&parser_));
      return {Event::Invalid, consumed};
  }
}

MessageParser::Step MessageParser::feed(std::string_view bytes) {
  const auto rc = llhttp_execute(&parser_, bytes.data(), bytes.size());
  return after_execute(rc, bytes.data(), bytes.size());
}

MessageParser::Step MessageParser::finish() {
  const auto rc = llhttp_finish(&parser_);
  if (rc == HPE_OK || rc == HPE_PAUSED) {
    pause_reason_ = Event::NeedMore;
    return {Event::MessageComplete, 0};
  }
  error_ = fmt::format("{}: {}", llhttp_errno_name(rc), llhttp_get_error_reason(&parser_));
  return {Event::Invalid, 0};
}

void MessageParser::resume() {
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);
}

}  // namespace egressd::proxy
