// What a policy is read from: the file's bytes, the targets of symlinked binary paths, and the hash that
// identifies both. Blocking file I/O: call it where the loader may be called (off the event loop).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "policy/loader.h"

namespace egressd::policy {

// The whole file (at most 16 MiB). The error is "cannot read: <strerror>" without a position.
Result<std::string, LoadError> read_source_file(const std::string& path);

// realpath(3) of `path`: what /proc/PID/exe reports for it. nullopt if it does not exist (yet).
std::optional<std::string> resolve_binary_path(const std::string& path);

// 16 lowercase hex digits of FNV-1a 64 over `text`, then each resolved symlink target (so that a
// retargeted symlink changes the hash even when the text does not).
std::string source_hash(std::string_view text, const std::vector<std::string>& resolved_targets);

}  // namespace egressd::policy
