// Which socket is the client's end of an accepted TCP connection: 4-tuple -> (inode, owner uid).
// Asks the kernel through a NETLINK_SOCK_DIAG exact lookup; reads /proc/net/tcp{,6} only when netlink
// itself is unavailable. Blocking but cheap (a few µs); thread-safe (a fresh netlink socket per call).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/result.h"
#include "procid/identify.h"
#include "procid/peer.h"

namespace egressd::procid {

// The client's socket: an inode that some process's fd table should link to as "socket:[inode]".
struct ClientSocket {
  uint64_t inode = 0;  // never 0: a socket without a file (closed, TIME_WAIT, orphan) is not returned
  uid_t uid = 0;       // the creator's fsuid at socket() time, as the kernel records it
};

// sock_diag first; on a SocketLookup failure (netlink unusable) /proc/net/tcp{,6}. Errors:
// NoSocket (no live socket with that tuple, or it has no owner), SocketLookup (neither source works).
Result<ClientSocket, LookupError> find_client_socket(const TcpTuple& tuple);

// The two sources, exposed for tests. query_sock_diag fails with SocketLookup when netlink itself fails
// (socket, send, recv, an error other than ENOENT) and with NoSocket when the kernel has no such socket,
// offers a listener instead, or the socket has no inode.
Result<ClientSocket, LookupError> query_sock_diag(const TcpTuple& tuple);
Result<ClientSocket, LookupError> scan_proc_net_tcp(const TcpTuple& tuple);

// The row of a /proc/net/tcp or /proc/net/tcp6 text whose local side is the client and remote side the
// proxy (v4-mapped rows match v4 tuples). Rows in LISTEN or TIME_WAIT, or with inode 0, never match.
// Pure: the text is the file's contents, header line included.
std::optional<ClientSocket> parse_proc_net_tcp(std::string_view table, const TcpTuple& tuple);

}  // namespace egressd::procid
