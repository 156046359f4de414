// Helpers for the policy unit tests: policies from inline YAML, data file paths, and a scratch directory
// for real files and symlinks. Header-only; failures are doctest failures of the calling test.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "policy/loader.h"
#include "policy/patterns.h"
#include "tests/support/temp_dir.h"

namespace egressd::policy::fixtures {

// The policy in `yaml`; the test fails (showing every error) if it does not load.
inline std::shared_ptr<const Policy> policy_from_yaml(std::string_view yaml) {
  Result<std::shared_ptr<const Policy>, LoadErrors> loaded = load_policy_text(yaml, "test.yaml");
  if (!loaded) FAIL(format_errors(loaded.error()));
  return *loaded;
}

// Policy text with one rule `r` for host:port whose binaries are `paths` (e.g. symlinks made by a test).
inline std::string yaml_for_binaries(std::string_view host, int port, const std::vector<std::string>& paths) {
  std::string yaml = "version: 1\nnetwork_policies:\n  r:\n    endpoints: [{ host: " + std::string(host) +
                     ", port: " + std::to_string(port) + " }]\n    binaries:\n";
  for (const std::string& path : paths) yaml += "      - { path: \"" + path + "\" }\n";
  return yaml;
}

// The errors of `yaml`, which must not load.
inline LoadErrors errors_from_yaml(std::string_view yaml) {
  Result<std::shared_ptr<const Policy>, LoadErrors> loaded = load_policy_text(yaml, "test.yaml");
  REQUIRE_FALSE(loaded.has_value());
  return loaded.error();
}

// A host pattern that must parse.
inline HostPattern host_pattern(std::string_view text) {
  Result<HostPattern, std::string> pattern = parse_host_pattern(text);
  if (!pattern) FAIL(pattern.error());
  return *pattern;
}

inline std::string data_path(std::string_view relative) {
  return std::string(EGRESSD_TEST_DATA_DIR) + "/" + std::string(relative);
}

// A temporary directory (canonical path, removed at the end) that also writes files and symlinks.
class ScratchDir : public test::TempDir {
 public:
  // Writes `text` to `name` (replacing it) and returns its path.
  std::string write(std::string_view name, std::string_view text) const {
    const std::string target = file(std::string(name));
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
    return target;
  }

  // Points the symlink `name` at `target`, replacing an existing link; returns the link's path.
  std::string symlink(std::string_view name, const std::string& target) const {
    const std::string link = file(std::string(name));
    std::error_code ignored;
    std::filesystem::remove(link, ignored);
    std::filesystem::create_symlink(target, link);
    return link;
  }
};

}  // namespace egressd::policy::fixtures
