// A strict reader of one JSON text (RFC 8259), for the decision-log lines `egressd suggest` reads: exactly
// one value, nothing around it but whitespace; no comments, trailing commas, NaN or single quotes; strings
// must be valid UTF-8 with valid escapes; a key repeated in one object is an error, not a choice; nesting
// stops at kMaxDepth. Errors say what was wrong and at which byte, and are never guessed past.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace egressd::policy {

class JsonValue {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  static constexpr int kMaxDepth = 32;

  JsonValue() = default;  // null
  // The value `text` holds; the error is "at byte N: what was expected".
  static Result<JsonValue, std::string> parse(std::string_view text);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // For a String, its text; for a Number, its text as written; otherwise empty.
  const std::string& text() const { return text_; }
  bool boolean() const { return bool_; }
  // A Number written as a plain non-negative integer (no sign, fraction or exponent) that fits.
  std::optional<uint64_t> unsigned_integer() const;
  const std::vector<JsonValue>& items() const { return items_; }                              // Array
  const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }  // Object
  // The member named `key` of an Object, or null when there is none (or this is not an Object).
  const JsonValue* find(std::string_view key) const;

 private:
  class Parser;

  Type type_ = Type::Null;
  bool bool_ = false;
  std::string text_;
  std::vector<JsonValue> items_;
  std::vector<std::pair<std::string, JsonValue>> members_;
};

}  // namespace egressd::policy
