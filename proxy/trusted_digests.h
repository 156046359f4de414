// Trust on first use for binaries: the first time an executable path is allowed, its SHA-256 is
// recorded; later, a different digest at that path is denied, naming both. The record is a file in
// sha256sum's format ("HEX  PATH" lines), appended to as binaries are first seen, read at start.
// Loop thread only.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/result.h"

namespace egressd::proxy {

class TrustedDigests {
 public:
  // Reads FILE if it exists (creating it, mode 0600, if not). An unreadable or malformed file is an
  // error: starting without the record would trust every binary afresh.
  static Result<TrustedDigests, std::string> open(const std::string& path);

  // The digest recorded for `exe`, if any.
  std::optional<std::string> recorded(const std::string& exe) const;
  // Records `sha256` for `exe` (in memory, and appended to the file). False if the file write failed;
  // the digest is then still trusted for this run.
  bool record(const std::string& exe, const std::string& sha256);
  const std::string& path() const { return path_; }
  size_t size() const { return digests_.size(); }

 private:
  std::string path_;
  std::map<std::string, std::string> digests_;
};

}  // namespace egressd::proxy
