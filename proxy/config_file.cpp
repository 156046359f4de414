#include "proxy/config_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

namespace egressd::proxy {
namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;  // a settings file; anything larger is a mistake

constexpr std::string_view kTopLevelKeys[] = {"listen",     "policy",      "watch_policy",       "deny_log",
                                              "access_log", "log_level",   "state_dir",          "ca_cert",
                                              "ca_key",     "upstream_ca", "trust_on_first_use", "metrics",
                                              "resolve",    "ready_file",  "timeouts",           "limits"};

struct NumberKey {
  std::string_view key;
  uint64_t Settings::*field;
};
constexpr NumberKey kTimeoutKeys[] = {{"head_ms", &Settings::head_timeout_ms},
                                      {"identify_ms", &Settings::identify_timeout_ms},
                                      {"connect_ms", &Settings::connect_timeout_ms},
                                      {"idle_ms", &Settings::idle_timeout_ms},
                                      {"handshake_ms", &Settings::handshake_timeout_ms}};
constexpr NumberKey kLimitKeys[] = {{"max_connections", &Settings::max_connections},
                                    {"max_connections_per_binary", &Settings::max_connections_per_binary}};

struct PathKey {
  std::string_view key;
  std::string Settings::*field;
};
constexpr PathKey kPathKeys[] = {
    {"deny_log", &Settings::deny_log_path}, {"access_log", &Settings::access_log_path},
    {"state_dir", &Settings::state_dir},    {"ca_cert", &Settings::ca_cert_path},
    {"ca_key", &Settings::ca_key_path},     {"upstream_ca", &Settings::upstream_ca_path},
    {"ready_file", &Settings::ready_file}};

// One key of a YAML mapping and its value. A null value has no useful mark (yaml-cpp puts it on the next
// token), so errors about it point at the key.
struct Entry {
  std::string key;  // dotted from the top ("timeouts.head_ms"), for messages
  YAML::Mark key_mark;
  YAML::Node value;
};

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? "the quoted string \"" + node.Scalar() + "\"" : "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a mapping";
  }
  return "an unknown node";
}

YAML::Mark mark_of(const Entry& entry) {
  const YAML::Node& node = entry.value;
  if (!node.IsDefined() || node.IsNull() || node.Mark().is_null()) return entry.key_mark;
  return node.Mark();
}

std::string join(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

template <typename Keys>
std::vector<std::string_view> names_of(const Keys& keys) {
  std::vector<std::string_view> names;
  for (const auto& k : keys) names.push_back(k.key);
  return names;
}

// Does the document-level work yaml-cpp's LoadAll would, without its endless loop on some malformed
// streams (a stray ',' as in ", a": jbeder/yaml-cpp #1040): only the documents' starts are recorded.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
  }
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// One read of one file: walks the mapping in file order, applying each value and collecting every error.
class ConfigReader {
 public:
  ConfigReader(const std::string& path, Settings& settings) : path_(path), settings_(settings) {
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) base_dir_ = dir.string();
  }

  // yaml-cpp throws on syntax errors; the caller catches.
  void read(const std::string& text);
  ConfigErrors& errors() { return errors_; }

 private:
  void fail(const YAML::Mark& mark, std::string message) {
    if (mark.is_null()) {
      errors_.push_back({path_, 0, 0, std::move(message)});
    } else {
      errors_.push_back({path_, static_cast<size_t>(mark.line) + 1, static_cast<size_t>(mark.column) + 1,
                         std::move(message)});
    }
  }
  // The entries of `map` (under `prefix`, "" at the top), each key checked against `accepted`.
  std::vector<Entry> entries(const YAML::Node& map, const std::string& prefix,
                             std::span<const std::string_view> accepted);
  std::optional<std::vector<Entry>> mapping_of(const Entry& entry,
                                               std::span<const std::string_view> accepted);
  std::optional<std::string> text_of(const Entry& entry, std::string_view expected);
  std::optional<std::string> path_of(const Entry& entry);
  std::optional<bool> bool_of(const Entry& entry);
  std::optional<uint64_t> number_of(const Entry& entry);
  void apply(const Entry& entry);
  void apply_numbers(const Entry& entry, std::span<const NumberKey> keys);

  std::string path_;
  std::string base_dir_;  // the file's directory: relative paths start here
  Settings& settings_;
  ConfigErrors errors_;
};

void ConfigReader::read(const std::string& text) {
  // At most two documents are looked at, so the parser cannot loop (see DocumentStarts).
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts documents;
  if (parser.HandleNextDocument(documents) && parser.HandleNextDocument(documents)) {
    const YAML::Mark& second = documents.starts.back();
    if (documents.starts.size() > 1 && second.pos == documents.starts.front().pos) {
      fail(second, "invalid YAML: unexpected token where a document starts");
    } else {
      fail(second, "expected one YAML document, found more");
    }
    return;
  }
  const YAML::Node root = documents.starts.empty() ? YAML::Node() : YAML::Load(text);
  if (!root.IsDefined() || root.IsNull()) {
    // An empty file is not "all defaults": that would run the embedded example policy in its place.
    fail(YAML::Mark::null_mark(), "empty config file; expected a mapping of settings (listen, policy, ...)");
    return;
  }
  if (!root.IsMap()) {
    fail(root.Mark(), "expected a mapping of settings (listen, policy, ...), found " + describe(root));
    return;
  }
  for (const Entry& entry : entries(root, "", kTopLevelKeys)) apply(entry);
}

std::vector<Entry> ConfigReader::entries(const YAML::Node& map, const std::string& prefix,
                                         std::span<const std::string_view> accepted) {
  std::vector<Entry> out;
  for (const auto& pair : map) {  // not it->first: yaml-cpp's operator-> returns a short-lived proxy
    const YAML::Node& key = pair.first;
    if (!key.IsScalar()) {
      fail(key.Mark().is_null() ? map.Mark() : key.Mark(), "expected a key name, found " + describe(key));
      continue;
    }
    const std::string name = prefix.empty() ? key.Scalar() : prefix + "." + key.Scalar();
    if (!accepted.empty() && std::find(accepted.begin(), accepted.end(), key.Scalar()) == accepted.end()) {
      fail(key.Mark(), fmt::format("unknown key '{}'; accepted keys{}: {}", name,
                                   prefix.empty() ? "" : " under " + prefix, join(accepted)));
      continue;
    }
    const auto first = std::find_if(out.begin(), out.end(), [&](const Entry& e) { return e.key == name; });
    if (first != out.end()) {
      fail(key.Mark(), fmt::format("duplicate key '{}' (first at {}:{})", name, first->key_mark.line + 1,
                                   first->key_mark.column + 1));
      continue;
    }
    out.push_back({name, key.Mark(), pair.second});
  }
  return out;
}

std::optional<std::vector<Entry>> ConfigReader::mapping_of(const Entry& entry,
                                                           std::span<const std::string_view> accepted) {
  if (!entry.value.IsMap()) {
    fail(mark_of(entry),
         fmt::format("expected a mapping for '{}', found {}", entry.key, describe(entry.value)));
    return std::nullopt;
  }
  return entries(entry.value, entry.key, accepted);
}

std::optional<std::string> ConfigReader::text_of(const Entry& entry, std::string_view expected) {
  if (entry.value.IsScalar() && !entry.value.Scalar().empty()) return entry.value.Scalar();
  fail(mark_of(entry), fmt::format("expected {} for '{}', found {}", expected, entry.key,
                                   entry.value.IsScalar() ? "an empty string" : describe(entry.value)));
  return std::nullopt;
}

std::optional<std::string> ConfigReader::path_of(const Entry& entry) {
  auto text = text_of(entry, "a file name");
  if (!text) return std::nullopt;
  if (text->find('\0') != std::string::npos) {
    fail(mark_of(entry), fmt::format("'{}' contains a NUL byte", entry.key));
    return std::nullopt;
  }
  if (text->front() != '/' && !base_dir_.empty()) return base_dir_ + "/" + *text;
  return text;
}

std::optional<bool> ConfigReader::bool_of(const Entry& entry) {
  if (entry.value.IsScalar() && entry.value.Tag() != "!") {
    const std::string& text = entry.value.Scalar();
    if (text == "true") return true;
    if (text == "false") return false;
  }
  fail(mark_of(entry),
       fmt::format("expected true or false for '{}', found {}", entry.key, describe(entry.value)));
  return std::nullopt;
}

std::optional<uint64_t> ConfigReader::number_of(const Entry& entry) {
  // A plain scalar: a quoted "30" is a string, as in the policy.
  if (entry.value.IsScalar() && (entry.value.Tag() == "?" || entry.value.Tag() == "tag:yaml.org,2002:int")) {
    auto number = parse_positive(entry.key, entry.value.Scalar());
    if (number) return *number;
    fail(mark_of(entry), number.error());
    return std::nullopt;
  }
  fail(mark_of(entry),
       fmt::format("expected a positive number for '{}', found {}", entry.key, describe(entry.value)));
  return std::nullopt;
}

void ConfigReader::apply_numbers(const Entry& entry, std::span<const NumberKey> keys) {
  const std::vector<std::string_view> names = names_of(keys);
  auto fields = mapping_of(entry, names);
  if (!fields) return;
  for (const Entry& field : *fields) {
    const std::string_view leaf = std::string_view(field.key).substr(entry.key.size() + 1);
    const auto key =
        std::find_if(keys.begin(), keys.end(), [&](const NumberKey& k) { return k.key == leaf; });
    if (auto number = number_of(field)) settings_.*(key->field) = *number;
  }
}

void ConfigReader::apply(const Entry& entry) {
  const std::string& key = entry.key;
  if (key == "listen" || key == "metrics") {
    auto text = text_of(entry, "ADDR:PORT");
    if (!text) return;
    auto address = parse_address(key, *text);
    if (!address) return fail(mark_of(entry), address.error());
    if (key == "listen") {
      std::tie(settings_.listen_host, settings_.listen_port) = *address;
    } else {
      std::tie(settings_.metrics_host, settings_.metrics_port) = *address;
    }
  } else if (key == "policy") {
    if (auto path = path_of(entry)) settings_.policy_path = *path;
  } else if (key == "watch_policy" || key == "trust_on_first_use") {
    if (auto value = bool_of(entry))
      (key == "watch_policy" ? settings_.watch_policy : settings_.trust_on_first_use) = *value;
  } else if (key == "log_level") {
    auto text = text_of(entry, "a log level");
    if (!text) return;
    if (auto known = check_log_level(key, *text); !known) return fail(mark_of(entry), known.error());
    settings_.log_level = *text;
  } else if (key == "resolve") {
    auto hosts = mapping_of(entry, {});
    if (!hosts) return;
    for (const Entry& host : *hosts) {
      auto addr = text_of(host, "an IP address");
      if (!addr) continue;
      auto resolved = parse_resolve(key, host.key.substr(key.size() + 1), *addr);
      if (!resolved) {
        fail(mark_of(host), resolved.error());
        continue;
      }
      settings_.resolve[resolved->first] = resolved->second;
    }
  } else if (key == "timeouts") {
    apply_numbers(entry, kTimeoutKeys);
  } else if (key == "limits") {
    apply_numbers(entry, kLimitKeys);
  } else {
    const auto path_key = std::find_if(std::begin(kPathKeys), std::end(kPathKeys),
                                       [&](const PathKey& k) { return k.key == key; });
    if (path_key == std::end(kPathKeys)) return fail(entry.key_mark, fmt::format("unhandled key '{}'", key));
    if (auto path = path_of(entry)) settings_.*(path_key->field) = *path;
  }
}

Result<std::string, ConfigError> read_config(const std::string& path) {
  auto failed = [&path](std::string message) {
    return unexpected(ConfigError{path, 0, 0, std::move(message)});
  };
  // O_NONBLOCK: a FIFO named by mistake must not hang the start; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return failed(fmt::format("cannot read: {}", std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return failed(fmt::format("cannot read: {}", std::strerror(error)));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return failed(S_ISDIR(info.st_mode) ? "cannot read: a directory, not a file"
                                        : "cannot read: not a regular file");
  }
  std::string text;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return failed(fmt::format("cannot read: {}", std::strerror(error)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      ::close(fd);
      return failed(fmt::format("larger than {} bytes; not a config file", kMaxConfigBytes));
    }
  }
  ::close(fd);
  return text;
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line == 0) return fmt::format("{}: {}", file, message);
  return fmt::format("{}:{}:{}: {}", file, line, col, message);
}

Result<void, ConfigErrors> apply_config_text(std::string_view text, const std::string& path,
                                             Settings& settings) {
  // yaml-cpp reports errors by throwing; nothing may leave here as an exception.
  try {
    ConfigReader reader(path, settings);
    reader.read(std::string(text));
    ConfigErrors& errors = reader.errors();
    if (!errors.empty()) {
      // Unknown keys are found before the values are read: report in file order.
      std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
        return std::tie(a.line, a.col) < std::tie(b.line, b.col);
      });
      return unexpected(std::move(errors));
    }
    return {};
  } catch (const YAML::Exception& e) {
    const bool positioned = !e.mark.is_null();
    return unexpected(
        ConfigErrors{{path, positioned ? static_cast<size_t>(e.mark.line) + 1 : 0,
                      positioned ? static_cast<size_t>(e.mark.column) + 1 : 0, "invalid YAML: " + e.msg}});
  } catch (const std::exception& e) {
    return unexpected(ConfigErrors{{path, 0, 0, std::string("cannot load: ") + e.what()}});
  }
}

Result<void, ConfigErrors> apply_config_file(const std::string& path, Settings& settings) {
  try {
    auto text = read_config(path);
    if (!text) return unexpected(ConfigErrors{std::move(text.error())});
    return apply_config_text(*text, path, settings);
  } catch (const std::exception& e) {  // std::bad_alloc while reading
    return unexpected(ConfigErrors{{path, 0, 0, std::string("cannot read: ") + e.what()}});
  }
}

}  // namespace egressd::proxy
