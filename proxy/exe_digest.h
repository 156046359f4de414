// SHA-256 of the executable a process runs, read through /proc/PID/exe: the image the process was
// started from, even if its path has since been replaced. Runs on the thread pool (never the loop).
// Cached by the file's identity (device, inode, size, mtime, ctime), so a 200 MB binary is read once
// for all its processes; a binary rewritten in place gets a new mtime/ctime and is hashed again.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>

#include "common/result.h"

namespace egressd::proxy {

struct ExeDigest {
  std::string sha256;       // lowercase hex
  uint64_t start_time = 0;  // the process's start time (field 22 of /proc/PID/stat), read after hashing
  bool cached = false;      // the file's digest was known: nothing was read
};

class ExeDigests {
 public:
  explicit ExeDigests(size_t capacity = 512) : capacity_(capacity) {}

  // Thread-safe. The error is a sentence ("cannot open /proc/4711/exe: No such file or directory").
  Result<ExeDigest, std::string> digest(pid_t pid);
  // The digest of an open file (cached the same way); for digest() and tests.
  // `cached`, if given, says whether the digest came from the cache.
  Result<std::string, std::string> sha256_of_fd(int fd, const std::string& name, bool* cached = nullptr);

  size_t files_hashed() const { return files_hashed_.load(); }  // cache misses: files actually read

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;
    bool operator==(const Key&) const = default;
  };
  struct Entry {
    Key key;
    std::string sha256;
  };

  size_t capacity_;
  std::mutex mutex_;
  std::list<Entry> entries_;  // guarded by mutex_; most recently used first
  std::atomic<size_t> files_hashed_{0};
};

}  // namespace egressd::proxy
