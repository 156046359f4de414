// A private directory under /tmp for one test, removed with everything in it when the TempDir dies,
// plus the small file helpers tests use to write policies and read logs. Failures throw
// std::runtime_error naming the path and errno, which doctest reports as a test failure.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace egressd::test {

class TempDir {
 public:
  TempDir();  // mkdtemp("/tmp/egressd-test-XXXXXX"); path() is canonical
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();  // recursive removal (kept when $EGRESSD_TEST_KEEP_DIRS is set, for a post-mortem)

  const std::string& path() const { return path_; }
  // path() + "/" + name; the file need not exist.
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Opens `path` with O_TRUNC (creating it, mode 0644) and writes `text`: the same inode when it existed.
void write_file(const std::string& path, const std::string& text);
// Writes `text` to a sibling temporary file and rename()s it over `path`: readers see old or new, whole.
void write_file_by_rename(const std::string& path, const std::string& text);
// The whole file; throws when it cannot be read.
std::string read_file(const std::string& path);
// The whole file, or nothing when it does not exist (yet).
std::optional<std::string> try_read_file(const std::string& path);
// Complete lines ('\n'-terminated, without it); a trailing partial line is left out (still being written).
std::vector<std::string> read_complete_lines(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace egressd::test
