#include "policy/json_value.h"

#include <algorithm>
#include <limits>

namespace egressd::policy {

class JsonValue::Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<JsonValue, std::string> document() {
    JsonValue value;
    skip_space();
    if (!parse_value(value, 0)) return egressd::unexpected(std::move(error_));
    skip_space();
    if (pos_ != text_.size()) {
      fail("unexpected text after the JSON value");
      return egressd::unexpected(std::move(error_));
    }
    return value;
  }

 private:
  bool fail(std::string what) {
    if (error_.empty()) error_ = "at byte " + std::to_string(pos_ + 1) + ": " + std::move(what);
    return false;
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return fail("expected a JSON value");
    pos_ += word.size();
    return true;
  }

  bool parse_value(JsonValue& out, int depth) {
    if (depth > kMaxDepth) return fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    if (at_end()) return fail("expected a JSON value, found the end of the line");
    switch (peek()) {
      case '{':
        return parse_object(out, depth);
      case '[':
        return parse_array(out, depth);
      case '"':
        out.type_ = Type::String;
        return parse_string(out.text_);
      case 't':
        out.type_ = Type::Bool;
        out.bool_ = true;
        return literal("true");
      case 'f':
        out.type_ = Type::Bool;
        out.bool_ = false;
        return literal("false");
      case 'n':
        out.type_ = Type::Null;
        return literal("null");
      default:
        out.type_ = Type::Number;
        return parse_number(out.text_);
    }
  }

  bool parse_object(JsonValue& out, int depth) {
    out.type_ = Type::Object;
    ++pos_;  // '{'
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      skip_space();
      if (peek() != '"') return fail("expected a member name in double quotes");
      std::string key;
      if (!parse_string(key)) return false;
      const auto same = [&key](const auto& member) { return member.first == key; };
      if (std::any_of(out.members_.begin(), out.members_.end(), same)) {
        return fail("the member \"" + key + "\" appears twice");
      }
      skip_space();
      if (peek() != ':') return fail("expected ':' after a member name");
      ++pos_;
      skip_space();
      JsonValue value;
      if (!parse_value(value, depth + 1)) return false;
      out.members_.emplace_back(std::move(key), std::move(value));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}' in an object");
    }
  }

  bool parse_array(JsonValue& out, int depth) {
    out.type_ = Type::Array;
    ++pos_;  // '['
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      skip_space();
      JsonValue value;
      if (!parse_value(value, depth + 1)) return false;
      out.items_.push_back(std::move(value));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']' in an array");
    }
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  // RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool parse_number(std::string& out) {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      return fail("expected a JSON value");
    }
    if (peek() == '.') {
      ++pos_;
      if (!is_digit(peek())) return fail("expected a digit after '.'");
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) return fail("expected a digit in the exponent");
      while (is_digit(peek())) ++pos_;
    }
    out.assign(text_.substr(start, pos_ - start));
    return true;
  }

  int hex4() {
    if (pos_ + 4 > text_.size()) return -1;
    int value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_ + i];
      const int digit = is_digit(c)              ? c - '0'
                        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                 : -1;
      if (digit < 0) return -1;
      value = value * 16 + digit;
    }
    pos_ += 4;
    return value;
  }

  static void append_utf8(std::string& out, uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xc0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xe0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    }
  }

  // One UTF-8 sequence starting at pos_ (not ASCII): well-formed, shortest form, no surrogates.
  bool copy_utf8(std::string& out) {
    const auto lead = static_cast<unsigned char>(text_[pos_]);
    const int length = lead >= 0xc2 && lead <= 0xdf   ? 2
                       : lead >= 0xe0 && lead <= 0xef ? 3
                       : lead >= 0xf0 && lead <= 0xf4 ? 4
                                                      : 0;
    if (length == 0 || pos_ + length > text_.size()) return fail("invalid UTF-8 in a string");
    uint32_t code = lead & (0x7f >> length);
    for (int i = 1; i < length; ++i) {
      const auto next = static_cast<unsigned char>(text_[pos_ + i]);
      if ((next & 0xc0) != 0x80) return fail("invalid UTF-8 in a string");
      code = (code << 6) | (next & 0x3f);
    }
    const uint32_t minimum = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
    if (code < minimum || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return fail("invalid UTF-8 in a string");
    }
    out.append(text_.substr(pos_, length));
    pos_ += length;
    return true;
  }

  bool parse_string(std::string& out) {
    ++pos_;  // '"'
    while (true) {
      if (at_end()) return fail("unterminated string");
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return fail("a control character inside a string must be escaped");
      if (c >= 0x80) {
        if (!copy_utf8(out)) return false;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      ++pos_;
      const char escape = peek();
      ++pos_;
      switch (escape) {
        case '"':
        case '\\':
        case '/':
          out += escape;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          int code = hex4();
          if (code < 0) return fail("expected four hex digits after \\u");
          if (code >= 0xdc00 && code <= 0xdfff) return fail("a lone low surrogate in a \\u escape");
          if (code >= 0xd800 && code <= 0xdbff) {
            if (text_.substr(pos_, 2) != "\\u") return fail("a high surrogate without its low half");
            pos_ += 2;
            const int low = hex4();
            if (low < 0xdc00 || low > 0xdfff) return fail("a high surrogate without its low half");
            code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
          }
          append_utf8(out, static_cast<uint32_t>(code));
          break;
        }
        default:
          --pos_;
          return fail("invalid escape in a string");
      }
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
};

Result<JsonValue, std::string> JsonValue::parse(std::string_view text) {
  return Parser(text).document();
}

std::optional<uint64_t> JsonValue::unsigned_integer() const {
  if (type_ != Type::Number || text_.empty() || text_.size() > 19) return std::nullopt;
  if (!std::all_of(text_.begin(), text_.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  if (text_.size() > 1 && text_.front() == '0') return std::nullopt;
  uint64_t value = 0;
  for (char c : text_) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

const JsonValue* JsonValue::find(std::string_view key) const {
  for (const auto& [name, value] : members_) {
    if (name == key) return &value;
  }
  return nullptr;
}

}  // namespace egressd::policy
