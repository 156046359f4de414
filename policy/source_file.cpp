#include "policy/source_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/unique_fd.h"

namespace egressd::policy {
namespace {

constexpr std::size_t kMaxPolicyBytes = std::size_t{16} << 20;

struct FreeMalloced {
  void operator()(char* p) const noexcept { free(p); }
};

}  // namespace

Result<std::string, LoadError> read_source_file(const std::string& path) {
  auto cannot_read = [&path](int errno_value) {
    return egressd::unexpected(
        LoadError{{path, 0, 0}, "cannot read: " + std::string(std::strerror(errno_value))});
  };
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) return cannot_read(errno);
  std::string text;
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = ::read(file.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return cannot_read(errno);
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > kMaxPolicyBytes) {
      return egressd::unexpected(
          LoadError{{path, 0, 0}, "file is larger than 16 MiB; is it really a policy?"});
    }
  }
}

std::optional<std::string> resolve_binary_path(const std::string& path) {
  std::unique_ptr<char, FreeMalloced> resolved(realpath(path.c_str(), nullptr));
  if (!resolved) return std::nullopt;
  return std::string(resolved.get());
}

std::string source_hash(std::string_view text, const std::vector<std::string>& resolved_targets) {
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  auto feed = [&hash](std::string_view bytes) {
    for (unsigned char byte : bytes) {
      hash ^= byte;
      hash *= 0x100000001b3ULL;  // FNV 64 prime
    }
  };
  feed(text);
  for (const std::string& target : resolved_targets) {
    feed(std::string_view("\0", 1));  // keeps "ab" + "c" apart from "a" + "bc"
    feed(target);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

}  // namespace egressd::policy
