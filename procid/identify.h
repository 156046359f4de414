// identify_peer(): socket 4-tuple -> socket inode (sock_diag exact lookup) -> every pid holding it
// (/proc/*/fd) -> each holder's exe, uid and ancestors. Blocking and /proc-heavy: never call it on the
// event loop. Fails closed: any doubt is a LookupError that names what failed.
#pragma once

#include <cerrno>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "procid/peer.h"

namespace egressd::procid {

struct LookupError {
  enum class Stage {
    SocketLookup,  // sock_diag / proc-net could not be queried
    NoSocket,      // no live socket with that tuple (client gone, TIME_WAIT, inode 0)
    NoHolder,      // socket exists but no process holds it (exited, or fd in flight)
    Permission,    // some /proc entry could not be read: a holder may be hidden
    Process,       // reading a holder's exe/status/stat failed
    Ambiguous,     // holders run different executables
  };
  Stage stage = Stage::SocketLookup;
  int errno_value = 0;
  pid_t pid = 0;
  std::string detail;  // a sentence naming what failed, e.g. "no process holds socket inode 1234"

  // e.g. "caller unknown: no process holds socket inode 1234"; used word for word in deny reasons
  std::string message() const;
};

Result<PeerIdentity, LookupError> identify_peer(const TcpTuple& tuple);

// identify_peer() for several connections with one /proc pass (find_holders_of): answers[i] is what
// identify_peer(tuples[i]) would say. Each socket is looked up first, so every connection in the batch
// existed before the pass began and all of its holders are seen.
std::vector<Result<PeerIdentity, LookupError>> identify_peers(std::span<const TcpTuple> tuples);

// The composition rule on its own (pure; exposed for tests): Ambiguous unless every holder runs the same
// executable (path and deleted-ness); pid = the holder that started first (tie: lowest pid); ancestors =
// non-empty ancestor exes present in every holder's chain, in the lowest pid's order; holders by pid.
Result<PeerIdentity, LookupError> identity_from_holders(uint64_t socket_inode, uid_t socket_uid,
                                                        std::vector<PeerProcess> holders);

}  // namespace egressd::procid
