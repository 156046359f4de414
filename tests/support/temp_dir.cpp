#include "tests/support/temp_dir.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "tests/support/unique_fd.h"

namespace egressd::test {
namespace {

[[noreturn]] void fail_errno(const std::string& what, const std::string& path, int error) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(error));
}

void write_all(int fd, const std::string& text, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("write", path, errno);
    done += static_cast<size_t>(n);
  }
}

}  // namespace

TempDir::TempDir() {
  std::string templ = "/tmp/egressd-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) fail_errno("mkdtemp", templ, errno);
  path_ = std::filesystem::canonical(templ).string();  // realpath() of files inside is what we wrote
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, std::string())) {}

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (const char* keep = ::getenv("EGRESSD_TEST_KEEP_DIRS"); keep != nullptr && *keep != '\0') return;
  std::error_code ignored;  // the test already has its verdict
  std::filesystem::remove_all(path_, ignored);
}

void write_file(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) fail_errno("open", path, errno);
  write_all(fd.get(), text, path);
}

void write_file_by_rename(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  write_file(tmp, text);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail_errno("rename over", path, errno);
}

std::optional<std::string> try_read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::nullopt;
    fail_errno("open", path, errno);
  }
  std::string text;
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read", path, errno);
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

std::string read_file(const std::string& path) {
  std::optional<std::string> text = try_read_file(path);
  if (!text) fail_errno("open", path, ENOENT);
  return std::move(*text);
}

std::vector<std::string> read_complete_lines(const std::string& path) {
  std::vector<std::string> lines;
  const std::optional<std::string> text = try_read_file(path);
  if (!text) return lines;
  size_t start = 0;
  while (true) {
    const size_t end = text->find('\n', start);
    if (end == std::string::npos) break;
    lines.push_back(text->substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace egressd::test
