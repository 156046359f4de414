// Which processes hold a socket: a walk over every /proc/PID/fd that collects every holder (fork and
// inheritance make several), then each holder's exe, uid, start time and ancestors. Blocking and
// proportional to the number of processes and fds on the host (split across a few threads it starts and
// joins itself): call it on a worker thread. Thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "procid/identify.h"
#include "procid/peer.h"

namespace egressd::procid {

// Every process holding "socket:[socket_inode]", sorted by pid. Processes that exit during the walk are
// left out. Fails closed: Permission when any process's fd table or a holder's exe cannot be read (a
// holder may be hidden), NoHolder when nobody holds it (exited, or the fd is in flight over SCM_RIGHTS).
Result<std::vector<PeerProcess>, LookupError> find_holders(uint64_t socket_inode);

// The same with the fd tables split between `threads` threads (this one included; 1: no extra thread);
// the answer does not depend on the number. find_holders(inode) uses default_scan_threads(): one per CPU,
// at most kMaxScanThreads. The scan is kernel-bound (readlink of every descriptor), so it speeds up with
// cores, not beyond.
inline constexpr unsigned kMaxScanThreads = 4;
unsigned default_scan_threads();
Result<std::vector<PeerProcess>, LookupError> find_holders(uint64_t socket_inode, unsigned threads);

// Several sockets in one pass over /proc: answers[i] is what find_holders(inodes[i]) would say, at the
// cost of one scan instead of one per socket (each process's descriptors are read once and compared with
// every inode asked about). A process that cannot be read fails every answer, since it could hide a holder
// of any of them; a holder that cannot be described fails the answers of the sockets it holds.
std::vector<Result<std::vector<PeerProcess>, LookupError>> find_holders_of(std::span<const uint64_t> inodes);
std::vector<Result<std::vector<PeerProcess>, LookupError>> find_holders_of(std::span<const uint64_t> inodes,
                                                                           unsigned threads);

// Field 22 (starttime, clock ticks since boot) of a /proc/PID/stat line. Field 2 (comm) may hold spaces
// and parentheses, so fields are counted after the last ')'. nullopt when malformed.
std::optional<uint64_t> parse_stat_start_time(std::string_view stat);

struct ProcessStatus {
  uid_t uid = 0;   // "Uid:" real uid
  pid_t ppid = 0;  // "PPid:"; 0 for pid 1, kernel threads' parent, or a parent outside our pid namespace
  // "CapPrm:", "CapEff:", "CapBnd:" as bit masks (bit n = capability n); 0 when the line is missing.
  uint64_t cap_permitted = 0;
  uint64_t cap_effective = 0;
  uint64_t cap_bounding = 0;
};
// The Uid, PPid and Cap* lines of a /proc/PID/status text. nullopt when Uid or PPid is missing or
// malformed.
std::optional<ProcessStatus> parse_status(std::string_view status);

// Whether a process whose fd table egressd may not read can be left out of the scan instead of failing
// it. Only when both hold: egressd has CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH in effect (so ordinary
// ptrace rules would have let it in: the refusal comes from a sandbox or LSM above it), and the process
// holds a capability outside egressd's bounding set (something more privileged than anything egressd or
// the agents beside it could start, e.g. a VM's or sandbox's own pid 1). Every other refusal fails closed.
bool beyond_reach(const ProcessStatus& self, const ProcessStatus& process);

}  // namespace egressd::procid
