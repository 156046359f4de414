#include "proxy/exe_digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "common/unique_fd.h"
#include "procid/holders.h"

namespace egressd::proxy {
namespace {

constexpr size_t kReadChunk = 1 << 20;

int64_t nanoseconds(const timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

std::string hex(const unsigned char* bytes, unsigned int length) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 15];
  }
  return out;
}

}  // namespace

Result<std::string, std::string> ExeDigests::sha256_of_fd(int fd, const std::string& name, bool* cached) {
  if (cached != nullptr) *cached = false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return unexpected(fmt::format("cannot stat {}: {}", name, std::strerror(errno)));
  const Key key{st.st_dev, st.st_ino, st.st_size, nanoseconds(st.st_mtim), nanoseconds(st.st_ctim)};
  {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->key == key) {
        entries_.splice(entries_.begin(), entries_, it);
        if (cached != nullptr) *cached = true;
        return entries_.front().sha256;
      }
    }
  }
  // Hashed outside the lock: other lookups (and other files) go on meanwhile.
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return unexpected(std::string("cannot start SHA-256"));
  }
  std::vector<unsigned char> buffer(kReadChunk);
  off_t offset = 0;
  while (true) {
    const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return unexpected(fmt::format("cannot read {}: {}", name, std::strerror(errno)));
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n));
    offset += n;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) return unexpected(std::string("SHA-256 failed"));
  ++files_hashed_;
  std::string sha256 = hex(digest, length);
  struct stat after {};
  // Changed while being read: the digest belongs to no version of the file; do not keep it.
  if (::fstat(fd, &after) == 0 && after.st_size == st.st_size && nanoseconds(after.st_mtim) == key.mtime_ns &&
      nanoseconds(after.st_ctim) == key.ctime_ns && offset == st.st_size) {
    std::lock_guard lock(mutex_);
    entries_.push_front({key, sha256});
    if (entries_.size() > capacity_) entries_.pop_back();
  } else {
    return unexpected(fmt::format("{} changed while it was being hashed", name));
  }
  return sha256;
}

Result<ExeDigest, std::string> ExeDigests::digest(pid_t pid) {
  const std::string exe = fmt::format("/proc/{}/exe", pid);
  const UniqueFd fd(::open(exe.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return unexpected(fmt::format("cannot open {}: {}", exe, std::strerror(errno)));
  bool cached = false;
  auto sha256 = sha256_of_fd(fd.get(), exe, &cached);
  if (!sha256) return unexpected(std::move(sha256.error()));
  // Read after hashing: if the pid now names another process, the caller sees a different start time.
  const std::string stat_path = fmt::format("/proc/{}/stat", pid);
  const UniqueFd stat_fd(::open(stat_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!stat_fd) return unexpected(fmt::format("cannot open {}: {}", stat_path, std::strerror(errno)));
  char text[4096];
  const ssize_t n = ::read(stat_fd.get(), text, sizeof text - 1);
  if (n <= 0) return unexpected(fmt::format("cannot read {}", stat_path));
  const auto start_time = procid::parse_stat_start_time(std::string_view(text, static_cast<size_t>(n)));
  if (!start_time) return unexpected(fmt::format("cannot parse {}", stat_path));
  return ExeDigest{std::move(*sha256), *start_time, cached};
}

}  // namespace egressd::proxy
