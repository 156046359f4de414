#include "procid/holders.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "common/log.h"
#include "procid/proc_fs.h"

namespace egressd::procid {
namespace {

constexpr size_t kMaxAncestors = 64;
// Below this many processes one thread scans them all.
constexpr size_t kParallelScanFrom = 64;
constexpr std::string_view kDeletedSuffix = " (deleted)";

// The process (or the fd) went away while we looked: not an error, it simply no longer holds anything.
bool vanished(int errno_value) {
  return errno_value == ENOENT || errno_value == ESRCH;
}
bool denied(int errno_value) {
  return errno_value == EACCES || errno_value == EPERM;
}

template <typename Number>
std::optional<Number> parse_decimal(std::string_view text) {
  Number value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

LookupError lookup_error(LookupError::Stage stage, int errno_value, pid_t pid, std::string detail) {
  LookupError error;
  error.stage = stage;
  error.errno_value = errno_value;
  error.pid = pid;
  error.detail = std::move(detail);
  return error;
}

// An unreadable /proc entry could hide a holder, so it ends the lookup (procid.md §3 pitfalls 11, 12).
LookupError unreadable(pid_t pid, std::string_view entry, int errno_value) {
  const std::string path = "/proc/" + std::to_string(pid) + (entry.empty() ? "" : "/") + std::string(entry);
  if (denied(errno_value)) {
    return lookup_error(LookupError::Stage::Permission, errno_value, pid,
                        "cannot inspect " + path +
                            " (permission denied); egressd needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH");
  }
  return lookup_error(LookupError::Stage::Process, errno_value, pid,
                      "cannot read " + path + ": " + errno_text(errno_value));
}

// Result<..., int>: errno on failure, EINVAL when the file was read but is malformed.
Result<uint64_t, int> read_start_time(int pid_dir) {
  auto stat = read_file_at(pid_dir, "stat");
  if (!stat) return unexpected(stat.error());
  const auto start_time = parse_stat_start_time(*stat);
  if (!start_time) return unexpected(EINVAL);
  return *start_time;
}

Result<ProcessStatus, int> read_status(int dir, const char* path) {
  auto text = read_file_at(dir, path);
  if (!text) return unexpected(text.error());
  const auto status = parse_status(*text);
  if (!status) return unexpected(EINVAL);
  return *status;
}

struct ExePath {
  std::string path;
  bool deleted = false;
};

// /proc/PID/exe says "PATH (deleted)" once the image was unlinked or replaced; strip that only if no
// file has that literal name, so a binary really called "x (deleted)" keeps its name (OpenShell #844).
Result<ExePath, int> read_exe(int pid_dir) {
  auto link = read_link_at(pid_dir, "exe");
  if (!link) return unexpected(link.error());
  ExePath exe{std::move(*link), false};
  if (exe.path.ends_with(kDeletedSuffix)) {
    struct stat st;
    if (::lstat(exe.path.c_str(), &st) != 0 && errno == ENOENT) {
      exe.path.resize(exe.path.size() - kDeletedSuffix.size());
      exe.deleted = true;
    }
  }
  return exe;
}

UniqueFd open_pid_dir(int proc_dir, pid_t pid) {
  return UniqueFd(::openat(proc_dir, std::to_string(pid).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

// Parent first, up to and including pid 1, at most kMaxAncestors. An unreadable ancestor is recorded with
// an empty exe (it then matches no rule); one whose status cannot be read ends the chain.
std::vector<Ancestor> read_ancestors(int proc_dir, pid_t parent) {
  std::vector<Ancestor> chain;
  pid_t pid = parent;
  while (pid > 0 && chain.size() < kMaxAncestors) {
    Ancestor ancestor;
    ancestor.pid = pid;
    pid_t next = 0;
    if (const UniqueFd dir = open_pid_dir(proc_dir, pid)) {
      if (auto exe = read_exe(dir.get())) {
        ancestor.exe = std::move(exe->path);
        ancestor.exe_deleted = exe->deleted;
      }
      if (const auto status = read_status(dir.get(), "status")) next = status->ppid;
    }
    chain.push_back(std::move(ancestor));
    if (pid == 1) break;
    pid = next;
  }
  return chain;
}

// One pass over /proc, shared by the scanning threads: the sockets asked about, and egressd's own status,
// read on first need.
struct Scan {
  int proc_dir = -1;
  std::vector<uint64_t> inodes;  // sorted, unique
  std::mutex self_mutex;
  std::optional<ProcessStatus> self;  // guarded by self_mutex
};

// One of the sockets asked about, under one of a process's descriptors.
struct Held {
  uint64_t inode = 0;
  std::string fd_link;  // "fd/N"
};

// A process whose fd table links to at least one of the sockets, before it is pinned and described.
struct Match {
  pid_t pid = 0;
  std::vector<Held> held;
};

std::string socket_link(uint64_t inode) {
  return "socket:[" + std::to_string(inode) + "]";
}

// The inode of a "socket:[N]" link target; 0 for anything else (no socket has inode 0).
uint64_t socket_inode_of(std::string_view target) {
  constexpr std::string_view kPrefix = "socket:[";
  if (!target.starts_with(kPrefix) || !target.ends_with(']')) return 0;
  return parse_decimal<uint64_t>(target.substr(kPrefix.size(), target.size() - kPrefix.size() - 1))
      .value_or(0);
}

Result<ProcessStatus, LookupError> own_status(Scan& scan) {
  const std::lock_guard lock(scan.self_mutex);
  if (!scan.self) {
    const auto self = read_status(AT_FDCWD, "/proc/thread-self/status");
    if (!self) {
      return unexpected(lookup_error(LookupError::Stage::Process, self.error(), 0,
                                     "cannot read /proc/thread-self/status: " + errno_text(self.error())));
    }
    scan.self = *self;
  }
  return *scan.self;
}

// A process egressd may not inspect: skipped if it is beyond_reach(), else the scan fails closed.
Result<std::optional<Match>, LookupError> refused(Scan& scan, pid_t pid, int errno_value) {
  const auto self = own_status(scan);
  if (!self) return unexpected(self.error());
  const UniqueFd pid_dir = open_pid_dir(scan.proc_dir, pid);
  if (!pid_dir) {
    if (vanished(errno)) return std::optional<Match>();
    return unexpected(unreadable(pid, "", errno));
  }
  const auto status = read_status(pid_dir.get(), "status");
  if (!status && vanished(status.error())) return std::optional<Match>();
  if (status && beyond_reach(*self, *status)) {
    log::debug(
        "procid: leaving pid {} out of the holder scan: it holds capabilities outside egressd's bounding set",
        pid);
    return std::optional<Match>();
  }
  return unexpected(unreadable(pid, "fd", errno_value));
}

// Walks one process's fd table with getdents64 and readlinkat relative to the open /proc/PID/fd: two
// syscalls per process and one per descriptor, no path strings, no DIR allocation. nullopt: the process
// holds none of the sockets (or has exited).
Result<std::optional<Match>, LookupError> scan_process(Scan& scan, pid_t pid) {
  char path[32];
  const auto [end, ec] = std::to_chars(path, path + sizeof path - 4, pid);
  if (ec != std::errc()) return std::optional<Match>();  // cannot happen for a pid_t
  std::memcpy(end, "/fd", 4);
  const UniqueFd fd_dir(::openat(scan.proc_dir, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd_dir) {
    const int error = errno;
    if (vanished(error)) return std::optional<Match>();
    if (denied(error)) return refused(scan, pid, error);
    return unexpected(unreadable(pid, "fd", error));
  }
  Match match;
  // Sized above the longest "socket:[N]", so a longer (truncated) target can never parse as one.
  char target[64];
  alignas(dirent64) char entries[8192];
  for (;;) {
    const ssize_t size = ::getdents64(fd_dir.get(), entries, sizeof entries);
    if (size == 0) break;
    if (size < 0) {
      const int error = errno;
      // An open /proc/PID/fd of a process that has since been reaped lists nothing or fails with ENOENT:
      // the process went away, it hides nothing.
      if (vanished(error)) return std::optional<Match>();
      if (denied(error)) return refused(scan, pid, error);
      return unexpected(unreadable(pid, "fd", error));
    }
    for (ssize_t offset = 0; offset < size;) {
      const auto* entry = reinterpret_cast<const dirent64*>(entries + offset);
      offset += entry->d_reclen;
      if (entry->d_name[0] == '.') continue;
      const ssize_t n = ::readlinkat(fd_dir.get(), entry->d_name, target, sizeof target);
      if (n < 0) {
        const int error = errno;
        if (vanished(error)) continue;  // that fd was closed after getdents64 listed it
        if (denied(error)) return refused(scan, pid, error);
        return unexpected(unreadable(pid, std::string("fd/") + entry->d_name, error));
      }
      const uint64_t inode = socket_inode_of(std::string_view(target, static_cast<size_t>(n)));
      if (inode != 0 && std::binary_search(scan.inodes.begin(), scan.inodes.end(), inode)) {
        match.held.push_back(Held{inode, std::string("fd/") + entry->d_name});
      }
    }
  }
  if (match.held.empty()) return std::optional<Match>();
  match.pid = pid;
  return std::optional<Match>(std::move(match));
}

// The fd tables of `pids`, split between threads in chunks taken in turn. The first error stops every
// thread and is the result: one process that cannot be read fails the whole scan, whichever thread met it.
class ParallelScan {
 public:
  ParallelScan(Scan& scan, const std::vector<pid_t>& pids) : scan_(scan), pids_(pids) {}

  Result<std::vector<Match>, LookupError> run(unsigned threads) {
    std::vector<std::thread> helpers;
    for (unsigned i = 1; i < threads; ++i) {
      try {
        helpers.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        break;  // no more threads now: the ones running (at least this one) still cover every pid
      }
    }
    work();
    for (std::thread& helper : helpers) helper.join();
    if (error_) return unexpected(std::move(*error_));
    return std::move(matches_);
  }

 private:
  static constexpr size_t kChunk = 16;  // pids per grab: few atomic operations, even spread at the end

  void work() noexcept {
    std::vector<Match> found;
    for (;;) {
      if (failed_.load(std::memory_order_relaxed)) return;
      const size_t begin = next_.fetch_add(kChunk, std::memory_order_relaxed);
      if (begin >= pids_.size()) break;
      for (size_t i = begin; i < std::min(begin + kChunk, pids_.size()); ++i) {
        auto match = scan_process(scan_, pids_[i]);
        if (!match) return fail(std::move(match).error());
        if (*match) found.push_back(std::move(**match));
      }
    }
    const std::lock_guard lock(mutex_);
    for (Match& match : found) matches_.push_back(std::move(match));
  }

  void fail(LookupError error) noexcept {
    const std::lock_guard lock(mutex_);
    if (!error_) error_ = std::move(error);
    failed_.store(true, std::memory_order_relaxed);
  }

  Scan& scan_;
  const std::vector<pid_t>& pids_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::vector<Match> matches_;        // guarded by mutex_
  std::optional<LookupError> error_;  // guarded by mutex_
};

// Reads a process through its pinned directory: start time, exe, uid and ancestors, then the start time
// again. nullopt: it exited or was replaced meanwhile.
Result<std::optional<PeerProcess>, LookupError> describe(int proc_dir, pid_t pid, int dir) {
  const auto fail = [&](std::string_view entry,
                        int errno_value) -> Result<std::optional<PeerProcess>, LookupError> {
    if (vanished(errno_value)) return std::optional<PeerProcess>();
    return unexpected(unreadable(pid, entry, errno_value));
  };

  PeerProcess process;
  process.pid = pid;
  const auto start_time = read_start_time(dir);
  if (!start_time) return fail("stat", start_time.error());
  process.start_time = *start_time;
  auto exe = read_exe(dir);
  if (!exe) return fail("exe", exe.error());
  process.exe = std::move(exe->path);
  process.exe_deleted = exe->deleted;
  const auto status = read_status(dir, "status");
  if (!status) return fail("status", status.error());
  process.uid = status->uid;
  process.ancestors = read_ancestors(proc_dir, status->ppid);

  // Pid reuse: the dirfd already turns a reused pid into ESRCH; the start time is re-read so the
  // description provably belongs to the process the directory was opened on.
  const auto start_time_again = read_start_time(dir);
  if (!start_time_again) return fail("stat", start_time_again.error());
  if (*start_time_again != process.start_time) return std::optional<PeerProcess>();
  return std::optional<PeerProcess>(std::move(process));
}

// Whether the described process still holds the socket, read after describing it through the same pinned
// directory: a pid reused since the scan describes either a process that holds it (a holder like any
// other) or nobody.
Result<bool, LookupError> still_holds(pid_t pid, int dir, std::string_view fd_link, std::string_view link) {
  const std::string path(fd_link);
  const auto target = read_link_at(dir, path.c_str());
  if (target) return *target == link;
  if (vanished(target.error())) return false;
  return unexpected(unreadable(pid, fd_link, target.error()));
}

std::vector<pid_t> list_pids(DIR* proc, Result<void, LookupError>& status) {
  std::vector<pid_t> pids;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(proc);
    if (entry == nullptr) {
      if (errno != 0) {
        status = unexpected(lookup_error(LookupError::Stage::Permission, errno, 0,
                                         "cannot list /proc: " + errno_text(errno)));
      }
      return pids;
    }
    const auto pid = parse_decimal<pid_t>(entry->d_name);
    if (pid && *pid > 0) pids.push_back(*pid);
  }
}

}  // namespace

std::optional<uint64_t> parse_stat_start_time(std::string_view stat) {
  const size_t comm_end = stat.rfind(')');
  if (comm_end == std::string_view::npos) return std::nullopt;
  // After "pid (comm)" come fields 3 (state), 4 (ppid), ...; starttime is field 22, the 20th of them.
  constexpr int kStartTimeIndex = 22 - 3;
  std::string_view rest = stat.substr(comm_end + 1);
  for (int index = 0;; ++index) {
    const size_t begin = rest.find_first_not_of(" \n");
    if (begin == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(begin);
    const size_t end = std::min(rest.find_first_of(" \n"), rest.size());
    if (index == kStartTimeIndex) return parse_decimal<uint64_t>(rest.substr(0, end));
    rest.remove_prefix(end);
  }
}

std::optional<ProcessStatus> parse_status(std::string_view status) {
  std::optional<uid_t> uid;
  std::optional<pid_t> ppid;
  // "Uid:\t<real>\t<effective>\t<saved>\t<fs>" and "PPid:\t<pid>"
  const auto first_number = [](std::string_view value) {
    const size_t begin = value.find_first_not_of(" \t");
    if (begin == std::string_view::npos) return std::string_view();
    value.remove_prefix(begin);
    return value.substr(0, std::min(value.find_first_of(" \t"), value.size()));
  };
  const auto capability_mask = [&](std::string_view value) {
    const std::string_view hex = first_number(value);
    uint64_t mask = 0;
    const auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), mask, 16);
    return ec == std::errc() && end == hex.data() + hex.size() ? mask : 0;
  };
  ProcessStatus parsed;
  while (!status.empty()) {
    const size_t end = std::min(status.find('\n'), status.size());
    const std::string_view line = status.substr(0, end);
    status.remove_prefix(std::min(end + 1, status.size()));
    if (line.starts_with("Uid:")) uid = parse_decimal<uid_t>(first_number(line.substr(4)));
    if (line.starts_with("PPid:")) ppid = parse_decimal<pid_t>(first_number(line.substr(5)));
    if (line.starts_with("CapPrm:")) parsed.cap_permitted = capability_mask(line.substr(7));
    if (line.starts_with("CapEff:")) parsed.cap_effective = capability_mask(line.substr(7));
    if (line.starts_with("CapBnd:")) parsed.cap_bounding = capability_mask(line.substr(7));
  }
  if (!uid || !ppid) return std::nullopt;
  parsed.uid = *uid;
  parsed.ppid = *ppid;
  return parsed;
}

bool beyond_reach(const ProcessStatus& self, const ProcessStatus& process) {
  constexpr uint64_t kInspectCapabilities =
      (uint64_t{1} << CAP_SYS_PTRACE) | (uint64_t{1} << CAP_DAC_READ_SEARCH);
  const bool self_may_inspect = (self.cap_effective & kInspectCapabilities) == kInspectCapabilities;
  const bool holds_more_than_self_could = (process.cap_permitted & ~self.cap_bounding) != 0;
  return self_may_inspect && holds_more_than_self_could;
}

unsigned default_scan_threads() {
  return std::clamp(std::thread::hardware_concurrency(), 1u, kMaxScanThreads);
}

Result<std::vector<PeerProcess>, LookupError> find_holders(uint64_t socket_inode) {
  return find_holders(socket_inode, default_scan_threads());
}

Result<std::vector<PeerProcess>, LookupError> find_holders(uint64_t socket_inode, unsigned threads) {
  return std::move(find_holders_of(std::span(&socket_inode, 1), threads).front());
}

std::vector<Result<std::vector<PeerProcess>, LookupError>> find_holders_of(std::span<const uint64_t> inodes) {
  return find_holders_of(inodes, default_scan_threads());
}

std::vector<Result<std::vector<PeerProcess>, LookupError>> find_holders_of(std::span<const uint64_t> inodes,
                                                                           unsigned threads) {
  using Answer = Result<std::vector<PeerProcess>, LookupError>;
  const auto everyone = [&](const LookupError& error) {
    return std::vector<Answer>(inodes.size(), unexpected(error));
  };
  const DirPtr proc(::opendir("/proc"));
  if (!proc) {
    const int error = errno;
    return everyone(
        lookup_error(LookupError::Stage::Permission, error, 0, "cannot list /proc: " + errno_text(error)));
  }
  Scan scan;
  scan.proc_dir = ::dirfd(proc.get());
  scan.inodes.assign(inodes.begin(), inodes.end());
  std::sort(scan.inodes.begin(), scan.inodes.end());
  scan.inodes.erase(std::unique(scan.inodes.begin(), scan.inodes.end()), scan.inodes.end());

  Result<void, LookupError> listed;
  const std::vector<pid_t> pids = list_pids(proc.get(), listed);
  if (!listed) return everyone(listed.error());

  // Every holder, no early exit: fork and fd inheritance give one socket several holders (procid.md §3.1).
  // One pass answers every socket asked about: a process that cannot be read might hide a holder of any of
  // them, so it fails them all. Threads only pay off once the scan outweighs starting them (~20-50 µs each).
  const unsigned workers = pids.size() >= kParallelScanFrom ? std::max(threads, 1u) : 1u;
  auto matches = ParallelScan(scan, pids).run(workers);
  if (!matches) return everyone(matches.error());

  // Per inode, in scan.inodes order: its holders so far, or the error that ends its lookup.
  std::vector<Answer> found(scan.inodes.size(), std::vector<PeerProcess>());
  const auto slot = [&](uint64_t inode) -> Answer& {
    return found[static_cast<size_t>(std::lower_bound(scan.inodes.begin(), scan.inodes.end(), inode) -
                                     scan.inodes.begin())];
  };
  // Pinned only now, and each held descriptor re-read after the description: see describe / still_holds.
  for (Match& match : *matches) {
    const UniqueFd dir = open_pid_dir(scan.proc_dir, match.pid);
    if (!dir && vanished(errno)) continue;
    Result<std::optional<PeerProcess>, LookupError> process =
        dir ? describe(scan.proc_dir, match.pid, dir.get()) : unexpected(unreadable(match.pid, "", errno));
    for (const Held& held : match.held) {
      Answer& answer = slot(held.inode);
      if (!answer) continue;  // this socket's lookup already failed
      if (!process) {
        answer = unexpected(process.error());
        continue;
      }
      if (!*process) continue;
      const auto holds = still_holds(match.pid, dir.get(), held.fd_link, socket_link(held.inode));
      if (!holds) {
        answer = unexpected(holds.error());
        continue;
      }
      const bool listed_already = std::any_of(answer->begin(), answer->end(),
                                              [&](const PeerProcess& p) { return p.pid == match.pid; });
      if (*holds && !listed_already) answer->push_back(**process);
    }
  }

  std::vector<Answer> answers;
  answers.reserve(inodes.size());
  for (const uint64_t inode : inodes) {
    Answer answer = slot(inode);
    if (answer && answer->empty()) {
      answer = unexpected(lookup_error(LookupError::Stage::NoHolder, 0, 0,
                                       "no process holds socket inode " + std::to_string(inode) +
                                           " (the client exited or passed the descriptor on)"));
    }
    if (answer) {
      std::sort(answer->begin(), answer->end(),
                [](const PeerProcess& a, const PeerProcess& b) { return a.pid < b.pid; });
    }
    answers.push_back(std::move(answer));
  }
  return answers;
}

}  // namespace egressd::procid
