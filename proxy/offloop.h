// Work that must not run on the event loop (caller identification reads /proc), queued on libuv's
// thread pool. Jobs carry the SessionId, never a Session pointer: the session may be gone when the
// result comes back, and then the result is dropped.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>

#include "common/result.h"
#include "procid/identify.h"
#include "procid/peer.h"
#include "proxy/exe_digest.h"

namespace egressd::proxy {

using SessionId = uint64_t;
class Server;

// Called on a thread-pool thread; must be thread-safe. procid::identify_peer in production.
using Identifier = std::function<Result<procid::PeerIdentity, procid::LookupError>(const procid::TcpTuple&)>;

// Queues identify(tuple); the result reaches server.on_identified(id, ...) on the loop thread.
// Returns libuv's status (0, or an error if the job could not be queued).
int queue_identify(uv_loop_t* loop, Server& server, SessionId id, const procid::TcpTuple& tuple,
                   const Identifier& identify);

// Queues digests.digest(pid); the result reaches server.on_digest(id, ...) on the loop thread.
int queue_digest(uv_loop_t* loop, Server& server, SessionId id, pid_t pid, ExeDigests& digests);

}  // namespace egressd::proxy
