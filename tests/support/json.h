// A minimal JSON value and parser, enough to check decision-log lines and 403 bodies field by field.
// Accessors throw std::runtime_error naming the problem and showing the value (a test failure with the
// text shown); Json::parse does the same for text that is not exactly one JSON value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::test {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;  // null
  static Json parse(std::string_view text);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_string() const { return type_ == Type::String; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Objects: the member named `key` (throws if absent), whether it is there, and the names in order.
  const Json& operator[](std::string_view key) const;
  bool has(std::string_view key) const;
  std::vector<std::string> keys() const;
  // Arrays: element i (throws when out of range). size() is the element or member count.
  const Json& at(size_t i) const;
  size_t size() const;
  // Arrays of strings: whether one equals `value`.
  bool contains(std::string_view value) const;

  const std::string& str() const;
  double num() const;
  int64_t integer() const;  // num(), which must be integral
  bool boolean() const;

  // Compact JSON text (keys in source order).
  std::string dump() const;

  friend bool operator==(const Json& json, std::string_view value) {
    return json.is_string() && json.text_ == value;
  }
  friend bool operator==(const Json& json, double value) { return json.is_number() && json.number_ == value; }
  friend std::ostream& operator<<(std::ostream& os, const Json& json) { return os << json.dump(); }

 private:
  class Parser;
  void require(Type want, const char* accessor) const;

  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0;
  std::string text_;
  std::vector<Json> items_;                            // Array
  std::vector<std::pair<std::string, Json>> members_;  // Object, source order
};

// Parses each element of `lines` (e.g. a JSON-lines log) into its Json value.
std::vector<Json> parse_json_lines(const std::vector<std::string>& lines);

}  // namespace egressd::test
