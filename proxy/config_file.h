// The daemon config file (`egressd run --config FILE`, e.g. /etc/egressd/egressd.yaml): one YAML mapping
// whose keys mirror the run flags. Unknown keys, duplicate keys and values of the wrong kind are errors
// naming FILE:LINE:COL, never ignored. Blocking file I/O: call it at start-up only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "proxy/settings.h"

namespace egressd::proxy {

struct ConfigError {
  std::string file;
  size_t line = 0;  // 1-based; 0 when the error concerns the whole file (unreadable, empty)
  size_t col = 0;
  std::string message;

  // "file:line:col: message" (or "file: message" without a position).
  std::string to_string() const;
};

using ConfigErrors = std::vector<ConfigError>;  // never empty when returned as an error

// Reads the file at `path` and applies it over `settings`: each key the file has replaces the value, the
// others keep theirs. Relative paths in the file are taken from the file's directory. On error
// `settings` may be partly applied (the caller stops); every error found is returned, in file order.
Result<void, ConfigErrors> apply_config_file(const std::string& path, Settings& settings);

// Same, from text in memory; `path` names the file in errors and anchors relative paths.
Result<void, ConfigErrors> apply_config_text(std::string_view text, const std::string& path,
                                             Settings& settings);

}  // namespace egressd::proxy
