// Building JSON text for decision-log lines and response bodies: one object, fields appended in order.
// Values from clients, /proc or policies are escaped here, never formatted into JSON by hand elsewhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy {

void append_json_string(std::string& out, std::string_view value);

class JsonObject {
 public:
  JsonObject& field(std::string_view key, std::string_view value);
  JsonObject& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  JsonObject& field(std::string_view key, int64_t value);
  JsonObject& field(std::string_view key, const std::vector<std::string>& values);
  JsonObject& null_field(std::string_view key);
  // `json` must be valid JSON text built by another JsonObject or JsonArray (never client bytes).
  JsonObject& raw_field(std::string_view key, std::string_view json);
  std::string str() const { return text_ + "}"; }

 private:
  void key(std::string_view k);
  std::string text_ = "{";
};

// A JSON array of objects: `[` + each JsonObject's str(), comma-separated + `]`.
std::string json_array(const std::vector<std::string>& objects);

}  // namespace egressd::proxy
