#include "proxy/exe_digest.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/unique_fd.h"
#include "proxy/trusted_digests.h"
#include "tests/support/temp_dir.h"

namespace egressd::proxy {
namespace {

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

Result<std::string, std::string> digest_file(ExeDigests& digests, const std::string& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  return digests.sha256_of_fd(fd.get(), path);
}

TEST_CASE("a file's SHA-256 is computed once while it is unchanged, and again once it changes") {
  const test::TempDir dir;
  const std::string path = dir.file("tool");
  write(path, "abc");
  ExeDigests digests;
  CHECK(digest_file(digests, path).value() ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(digest_file(digests, path).value() ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(digests.files_hashed() == 1);
  write(path, "abd");  // rewritten in place: same inode, new size/mtime/ctime
  CHECK(digest_file(digests, path).value() ==
        "a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9");
  CHECK(digests.files_hashed() == 2);
}

TEST_CASE("a 64 MiB file is read once for any number of lookups") {
  const test::TempDir dir;
  const std::string path = dir.file("big");
  {
    const UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0700));
    REQUIRE(::ftruncate(fd.get(), 64 << 20) == 0);  // sparse zeros
  }
  ExeDigests digests;
  const auto first = digest_file(digests, path);
  REQUIRE(first);
  for (int i = 0; i < 10; ++i) CHECK(digest_file(digests, path).value() == *first);
  CHECK(digests.files_hashed() == 1);
}

TEST_CASE("digest(pid) hashes /proc/PID/exe and reports the process's start time") {
  ExeDigests digests;
  const auto self = digests.digest(::getpid());
  REQUIRE(self);
  CHECK(self->sha256.size() == 64);
  CHECK(self->start_time > 0);
  const UniqueFd exe(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  CHECK(digests.sha256_of_fd(exe.get(), "/proc/self/exe").value() == self->sha256);
  CHECK(digests.files_hashed() == 1);  // the second lookup was the cache's
  CHECK_FALSE(digests.digest(0));      // no such process
}

TEST_CASE("trusted digests are recorded in sha256sum's format, 0600, and read back at the next start") {
  const test::TempDir dir;
  const std::string path = dir.file("binary-digests.sha256");
  {
    auto trusted = TrustedDigests::open(path);
    REQUIRE(trusted);
    CHECK(trusted->size() == 0);
    CHECK_FALSE(trusted->recorded("/usr/bin/curl"));
    CHECK(trusted->record("/usr/bin/curl", std::string(64, 'a')));
  }
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  CHECK(line == std::string(64, 'a') + "  /usr/bin/curl");
  auto again = TrustedDigests::open(path);
  REQUIRE(again);
  CHECK(again->recorded("/usr/bin/curl") == std::string(64, 'a'));
}

TEST_CASE("a malformed trusted-digest file is an error naming its line, not an empty record") {
  const test::TempDir dir;
  const std::string path = dir.file("digests");
  write(path, std::string(64, 'b') + "  /usr/bin/git\nnot a digest line\n");
  const auto trusted = TrustedDigests::open(path);
  REQUIRE_FALSE(trusted);
  CHECK(trusted.error() == path + ":2: expected 'SHA256  /absolute/path'");
}

}  // namespace
}  // namespace egressd::proxy
