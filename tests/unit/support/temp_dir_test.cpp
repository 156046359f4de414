#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>

namespace egressd::test {
namespace {

ino_t inode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

TEST_CASE("a TempDir is a fresh directory under /tmp, removed with its contents") {
  std::string path;
  {
    const TempDir dir;
    path = dir.path();
    CHECK(path.starts_with("/tmp/egressd-test-"));
    CHECK(std::filesystem::is_directory(path));
    std::filesystem::create_directories(dir.file("a/b"));
    write_file(dir.file("a/b/c"), "x");
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("write_file rewrites the same inode; write_file_by_rename replaces it") {
  const TempDir dir;
  const std::string path = dir.file("policy.yaml");
  write_file(path, "one");
  const ino_t first = inode_of(path);
  write_file(path, "two");
  CHECK(inode_of(path) == first);
  CHECK(read_file(path) == "two");
  write_file_by_rename(path, "three");
  CHECK(inode_of(path) != first);
  CHECK(read_file(path) == "three");
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                      std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("read_complete_lines leaves out a line still being written") {
  const TempDir dir;
  const std::string path = dir.file("log");
  CHECK(read_complete_lines(path).empty());
  write_file(path, "a\nb\npart");
  CHECK(read_complete_lines(path) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("read_file throws for a missing file; try_read_file says nothing") {
  const TempDir dir;
  CHECK_THROWS_WITH(read_file(dir.file("missing")), doctest::Contains("missing"));
  CHECK_FALSE(try_read_file(dir.file("missing")).has_value());
  CHECK_FALSE(file_exists(dir.file("missing")));
}

}  // namespace
}  // namespace egressd::test
