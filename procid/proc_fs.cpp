#include "procid/proc_fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace egressd::procid {

Result<std::string, int> read_file_at(int dir_fd, const char* path) {
  UniqueFd file(::openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!file) return unexpected(errno);
  std::string text;
  // /proc files report size 0 and hand out at most a page per read(), so read until EOF.
  char chunk[8192];
  for (;;) {
    const ssize_t n = ::read(file.get(), chunk, sizeof chunk);
    if (n == 0) return text;
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(errno);
    }
    text.append(chunk, static_cast<size_t>(n));
  }
}

Result<std::string, int> read_link_at(int dir_fd, const char* path) {
  // readlink(2) truncates silently; a result that fills the buffer may be cut, so grow and retry.
  std::string target(256, '\0');
  for (;;) {
    const ssize_t n = ::readlinkat(dir_fd, path, target.data(), target.size());
    if (n < 0) return unexpected(errno);
    if (static_cast<size_t>(n) < target.size()) {
      target.resize(static_cast<size_t>(n));
      return target;
    }
    if (target.size() >= 65536) return unexpected(ENAMETOOLONG);
    target.resize(target.size() * 4);
  }
}

std::string errno_text(int errno_value) {
  return std::generic_category().message(errno_value);
}

}  // namespace egressd::procid
