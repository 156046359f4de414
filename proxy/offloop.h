// Work that must not run on the event loop (caller identification reads /proc), queued on libuv's
// thread pool. Jobs carry the SessionId, never a Session pointer: the session may be gone when the
// result comes back, and then the result is dropped.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "common/result.h"
#include "procid/identify.h"
#include "procid/peer.h"
#include "proxy/exe_digest.h"

namespace egressd::proxy {

using SessionId = uint64_t;
class Server;

using IdentifyAnswer = Result<procid::PeerIdentity, procid::LookupError>;
// Called on a thread-pool thread with every connection waiting for identification; answers[i] is for
// tuples[i]. Must be thread-safe. procid::identify_peers in production.
using Identifier = std::function<std::vector<IdentifyAnswer>(std::span<const procid::TcpTuple>)>;
// An Identifier that answers one connection at a time (for tests and stand-ins).
Identifier one_at_a_time(std::function<IdentifyAnswer(const procid::TcpTuple&)> identify);

// Caller identification, batched and off the loop. The first connection starts a pass at once; those
// accepted while a pass runs wait for the next one, which then answers all of them with one walk over
// /proc (procid::identify_peers). A pass is never shared with a connection accepted after it began, so
// every holder of its socket is seen. At most kPasses passes run at once, so one pass stuck on a slow
// /proc entry does not hold up every other connection. Lives on the loop thread; each answer reaches
// server.on_identified(id, ...) there.
class IdentifyQueue {
 public:
  static constexpr size_t kPasses = 2;

  IdentifyQueue(uv_loop_t* loop, Server& server, Identifier identify);
  IdentifyQueue(const IdentifyQueue&) = delete;
  IdentifyQueue& operator=(const IdentifyQueue&) = delete;
  ~IdentifyQueue();

  // Returns libuv's status: nonzero when no pass could be queued (nothing is answered for `id` then).
  int submit(SessionId id, const procid::TcpTuple& tuple);

 private:
  struct Pass;
  static void uv_on_work(uv_work_t* req) noexcept;
  static void uv_on_after_work(uv_work_t* req, int status) noexcept;
  int start_pass();
  void on_pass_done(Pass& pass);

  uv_loop_t* loop_;
  Server& server_;
  std::shared_ptr<const Identifier> identify_;
  std::vector<std::pair<SessionId, procid::TcpTuple>> waiting_;
  std::vector<Pass*> running_;  // each owned by its libuv request until uv_on_after_work
};

// Queues digests.digest(pid); the result reaches server.on_digest(id, ...) on the loop thread.
int queue_digest(uv_loop_t* loop, Server& server, SessionId id, pid_t pid, ExeDigests& digests);

}  // namespace egressd::proxy
