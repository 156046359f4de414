#include "proxy/trusted_digests.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "common/unique_fd.h"

namespace egressd::proxy {

Result<TrustedDigests, std::string> TrustedDigests::open(const std::string& path) {
  TrustedDigests trusted;
  trusted.path_ = path;
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return unexpected(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  std::string text;
  char buffer[65536];
  for (ssize_t n; (n = ::read(fd.get(), buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return unexpected(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    text.append(buffer, static_cast<size_t>(n));
  }
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.empty()) continue;
    // "HEX  PATH", as sha256sum writes it (two spaces; a '*' instead of the second in binary mode).
    if (line.size() < 67 || line.find_first_not_of("0123456789abcdef") != 64 || line[64] != ' ' ||
        (line[65] != ' ' && line[65] != '*') || line[66] != '/') {
      return unexpected(fmt::format("{}:{}: expected 'SHA256  /absolute/path'", path, number));
    }
    trusted.digests_[line.substr(66)] = line.substr(0, 64);
  }
  return trusted;
}

std::optional<std::string> TrustedDigests::recorded(const std::string& exe) const {
  const auto it = digests_.find(exe);
  if (it == digests_.end()) return std::nullopt;
  return it->second;
}

bool TrustedDigests::record(const std::string& exe, const std::string& sha256) {
  digests_[exe] = sha256;
  const UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return false;
  const std::string line = sha256 + "  " + exe + "\n";
  return ::write(fd.get(), line.data(), line.size()) == static_cast<ssize_t>(line.size());
}

}  // namespace egressd::proxy
