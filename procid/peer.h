// Who is behind a TCP peer: the processes holding the client end of a connection accepted by egressd.
// Plain data; produced by identify_peer() (procid/identify.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace egressd::procid {

// An IPv4 or IPv6 address in network byte order. IPv4-mapped IPv6 (::ffff:a.b.c.d) is always stored
// as plain IPv4 (family 4), so a v4 client seen by a dual-stack listener compares equal.
struct IpAddress {
  uint8_t family = 0;  // 4 or 6
  uint8_t bytes[16] = {};

  static IpAddress v4(const uint8_t (&b)[4]);
  static IpAddress v6(const uint8_t (&b)[16]);  // normalizes v4-mapped to v4
  std::string to_string() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// The connection as egressd's accepted socket sees it: client = getpeername, proxy = getsockname.
struct TcpTuple {
  IpAddress client_ip;
  uint16_t client_port = 0;  // host byte order
  IpAddress proxy_ip;
  uint16_t proxy_port = 0;  // host byte order
};

struct Ancestor {
  pid_t pid = 0;
  std::string exe;           // empty when it could not be read (that ancestor then matches no rule)
  bool exe_deleted = false;  // as PeerProcess::exe_deleted
};

struct PeerProcess {
  pid_t pid = 0;
  uid_t uid = 0;
  std::string exe;                  // /proc/PID/exe, " (deleted)" stripped only if that path no longer exists
  bool exe_deleted = false;         // the running image was deleted or replaced on disk
  uint64_t start_time = 0;          // field 22 of /proc/PID/stat (clock ticks since boot)
  std::vector<Ancestor> ancestors;  // parent first, up to and including pid 1 or 64 levels
};

// The caller: every process holding the socket agreed on one executable.
struct PeerIdentity {
  std::string exe;  // shared by every holder
  pid_t pid = 0;    // the holder that started first (the likely connector)
  uid_t uid = 0;    // socket owner uid (from the kernel)
  uint64_t socket_inode = 0;
  std::vector<std::string> ancestors;  // ancestor exes present in every holder's chain, nearest first
  std::vector<PeerProcess> holders;    // all of them, by pid
};

}  // namespace egressd::procid
