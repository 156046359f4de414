#include "proxy/json_text.h"

#include <fmt/format.h>

namespace egressd::proxy {

void append_json_string(std::string& out, std::string_view value) {
  out.push_back('"');
  for (unsigned char c : value) {
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
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out.push_back(static_cast<char>(c));  // UTF-8 passes through; invalid bytes are kept as they are
        }
    }
  }
  out.push_back('"');
}

void JsonObject::key(std::string_view k) {
  if (text_.size() > 1) text_.push_back(',');
  append_json_string(text_, k);
  text_.push_back(':');
}

JsonObject& JsonObject::field(std::string_view k, std::string_view value) {
  key(k);
  append_json_string(text_, value);
  return *this;
}

JsonObject& JsonObject::field(std::string_view k, int64_t value) {
  key(k);
  text_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::field(std::string_view k, const std::vector<std::string>& values) {
  key(k);
  text_.push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text_.push_back(',');
    append_json_string(text_, values[i]);
  }
  text_.push_back(']');
  return *this;
}

JsonObject& JsonObject::null_field(std::string_view k) {
  key(k);
  text_ += "null";
  return *this;
}

JsonObject& JsonObject::raw_field(std::string_view k, std::string_view json) {
  key(k);
  text_ += json;
  return *this;
}

std::string json_array(const std::vector<std::string>& objects) {
  std::string out = "[";
  for (size_t i = 0; i < objects.size(); ++i) {
    if (i > 0) out += ',';
    out += objects[i];
  }
  return out + "]";
}

}  // namespace egressd::proxy
