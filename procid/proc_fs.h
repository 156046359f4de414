// Small /proc primitives shared by socket_inode.cpp and holders.cpp: reads that report errno instead
// of throwing, so callers can tell "vanished" (ENOENT/ESRCH) from "denied" (EACCES/EPERM). Thread-safe: no
// state beyond the caller's descriptors.
#pragma once

#include <dirent.h>

#include <memory>
#include <string>
#include <utility>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::procid {

using egressd::UniqueFd;

struct CloseDir {
  void operator()(DIR* dir) const noexcept { closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, CloseDir>;  // owns the DIR and the descriptor under it

// The whole file at dir_fd/path (dir_fd may be AT_FDCWD). Error: the errno of open or read.
Result<std::string, int> read_file_at(int dir_fd, const char* path);

// The target of the symlink at dir_fd/path, never truncated. Error: the errno of readlinkat.
Result<std::string, int> read_link_at(int dir_fd, const char* path);

// "Permission denied" for EACCES: strerror without strerror's thread-safety problem.
std::string errno_text(int errno_value);

}  // namespace egressd::procid
