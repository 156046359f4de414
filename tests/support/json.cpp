#include "tests/support/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace egressd::test {
namespace {

const char* type_name(Json::Type type) {
  switch (type) {
    case Json::Type::Null:
      return "null";
    case Json::Type::Bool:
      return "bool";
    case Json::Type::Number:
      return "number";
    case Json::Type::String:
      return "string";
    case Json::Type::Array:
      return "array";
    case Json::Type::Object:
      return "object";
  }
  return "?";
}

void append_utf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

void dump_string(std::string& out, const std::string& text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

// Recursive descent over RFC 8259. Depth is bounded so a hostile line cannot overflow the stack.
class Json::Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Json parse_document() {
    Json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) fail("trailing characters after the value");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 200;

  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error("invalid JSON at offset " + std::to_string(pos_) + " (" + why +
                             "): " + std::string(text_));
  }

  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool consume_literal(std::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) return false;
    pos_ += literal.size();
    return true;
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) fail("nested too deeply");
    skip_space();
    if (pos_ >= text_.size()) fail("unexpected end");
    Json value;
    const char c = text_[pos_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      value.type_ = Type::String;
      value.text_ = parse_string();
    } else if (consume_literal("true")) {
      value.type_ = Type::Bool;
      value.bool_ = true;
    } else if (consume_literal("false")) {
      value.type_ = Type::Bool;
    } else if (consume_literal("null")) {
      value.type_ = Type::Null;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      value.type_ = Type::Number;
      value.number_ = parse_number();
    } else {
      fail(std::string("unexpected character '") + c + "'");
    }
    return value;
  }

  Json parse_object(int depth) {
    Json value;
    value.type_ = Type::Object;
    ++pos_;  // '{'
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return value;
    }
    while (true) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a member name");
      std::string key = parse_string();
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ':') fail("expected ':'");
      ++pos_;
      for (const auto& member : value.members_) {
        if (member.first == key) fail("duplicate member '" + key + "'");
      }
      value.members_.emplace_back(std::move(key), parse_value(depth + 1));
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return value;
      }
      fail("expected ',' or '}'");
    }
  }

  Json parse_array(int depth) {
    Json value;
    value.type_ = Type::Array;
    ++pos_;  // '['
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return value;
    }
    while (true) {
      value.items_.push_back(parse_value(depth + 1));
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return value;
      }
      fail("expected ',' or ']'");
    }
  }

  uint32_t parse_hex4() {
    if (pos_ + 4 > text_.size()) fail("short \\u escape");
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        fail("bad hex digit in \\u escape");
      }
    }
    return value;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) fail("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
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
          uint32_t code_point = parse_hex4();
          if (code_point >= 0xD800 && code_point <= 0xDBFF) {  // high surrogate: a low one must follow
            if (!consume_literal("\\u")) fail("lone high surrogate");
            const uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("bad low surrogate");
            code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
          } else if (code_point >= 0xDC00 && code_point <= 0xDFFF) {
            fail("lone low surrogate");
          }
          append_utf8(out, code_point);
          break;
        }
        default:
          fail(std::string("unknown escape \\") + e);
      }
    }
  }

  double parse_number() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (text_[pos_] == '-') ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      fail("expected digits");
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) fail("expected digits after '.'");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) fail("expected exponent digits");
    }
    const std::string number(text_.substr(start, pos_ - start));
    return std::strtod(number.c_str(), nullptr);
  }

  std::string_view text_;
  size_t pos_ = 0;
};

Json Json::parse(std::string_view text) {
  return Parser(text).parse_document();
}

void Json::require(Type want, const char* accessor) const {
  if (type_ != want) {
    throw std::runtime_error(std::string("Json::") + accessor + " on a " + type_name(type_) + " (wanted a " +
                             type_name(want) + "): " + dump());
  }
}

const Json& Json::operator[](std::string_view key) const {
  require(Type::Object, "operator[]");
  for (const auto& member : members_) {
    if (member.first == key) return member.second;
  }
  throw std::runtime_error("no member '" + std::string(key) + "' in " + dump());
}

bool Json::has(std::string_view key) const {
  if (type_ != Type::Object) return false;
  for (const auto& member : members_) {
    if (member.first == key) return true;
  }
  return false;
}

std::vector<std::string> Json::keys() const {
  require(Type::Object, "keys");
  std::vector<std::string> names;
  for (const auto& member : members_) names.push_back(member.first);
  return names;
}

const Json& Json::at(size_t i) const {
  require(Type::Array, "at");
  if (i >= items_.size()) {
    throw std::runtime_error("index " + std::to_string(i) + " out of range in " + dump());
  }
  return items_[i];
}

size_t Json::size() const {
  if (type_ == Type::Array) return items_.size();
  if (type_ == Type::Object) return members_.size();
  require(Type::Array, "size");
  return 0;
}

bool Json::contains(std::string_view value) const {
  require(Type::Array, "contains");
  for (const Json& item : items_) {
    if (item == value) return true;
  }
  return false;
}

const std::string& Json::str() const {
  require(Type::String, "str");
  return text_;
}

double Json::num() const {
  require(Type::Number, "num");
  return number_;
}

int64_t Json::integer() const {
  require(Type::Number, "integer");
  if (std::trunc(number_) != number_) throw std::runtime_error("not an integer: " + dump());
  return static_cast<int64_t>(number_);
}

bool Json::boolean() const {
  require(Type::Bool, "boolean");
  return bool_;
}

std::string Json::dump() const {
  std::string out;
  switch (type_) {
    case Type::Null:
      return "null";
    case Type::Bool:
      return bool_ ? "true" : "false";
    case Type::Number: {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.17g", number_);
      return buffer;
    }
    case Type::String:
      dump_string(out, text_);
      return out;
    case Type::Array:
      out += '[';
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i > 0) out += ',';
        out += items_[i].dump();
      }
      out += ']';
      return out;
    case Type::Object:
      out += '{';
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i > 0) out += ',';
        dump_string(out, members_[i].first);
        out += ':';
        out += members_[i].second.dump();
      }
      out += '}';
      return out;
  }
  return out;
}

std::vector<Json> parse_json_lines(const std::vector<std::string>& lines) {
  std::vector<Json> values;
  values.reserve(lines.size());
  for (const std::string& line : lines) values.push_back(Json::parse(line));
  return values;
}

}  // namespace egressd::test
