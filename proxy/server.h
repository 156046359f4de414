// Server: the listener, the registry of live sessions, deferred deletion of finished ones, and policy
// reloads fanned out to every session. Lives on the loop thread and outlives the loop's last callback.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "policy/store.h"
#include "procid/identify.h"
#include "proxy/decision_log.h"
#include "proxy/exe_digest.h"
#include "proxy/interception.h"
#include "proxy/metrics.h"
#include "proxy/metrics_server.h"
#include "proxy/offloop.h"
#include "proxy/policy_reload.h"
#include "proxy/redirect_memory.h"
#include "proxy/reload_observer.h"
#include "proxy/settings.h"
#include "proxy/trusted_digests.h"
#include "proxy/uv_handle.h"

namespace egressd::proxy {

class Session;

class Server : private PolicyLoadListener {
 public:
  Server(uv_loop_t* loop, const Settings& settings, policy::PolicyStore& policies, DecisionLog& deny_log,
         DecisionLog& access_log, Identifier identify, Interception& interception, RedirectMemory& redirects);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // The proxy listener, and the --metrics one when settings ask for it.
  Result<void, std::string> listen();
  std::string bound_address() const;    // "127.0.0.1:PORT" once listening ("[::1]:PORT" for v6)
  std::string metrics_address() const;  // the same for --metrics; empty without it

  // Re-reads the policy file on the thread pool (one load at a time; requests meanwhile are coalesced
  // into one more load); back on the loop, installs it and re-checks every live session against it.
  void reload_policy();
  // Told when each reload starts and how it ended, from now on (null: nobody). Not owned.
  void set_reload_observer(ReloadObserver* observer) { reload_observer_ = observer; }
  // Closes the listener and every session; the loop then runs down.
  void stop();

  // For sessions and thread-pool jobs.
  uv_loop_t* loop() const { return loop_; }
  const Settings& settings() const { return settings_; }
  const std::shared_ptr<const policy::Policy>& policy() const { return policies_.current(); }
  DecisionLog& deny_log() { return deny_log_; }
  DecisionLog& access_log() { return access_log_; }
  Interception& interception() { return interception_; }
  RedirectMemory& redirects() { return redirects_; }
  Metrics& metrics() { return metrics_; }
  std::string render_metrics() const;  // the /metrics body
  Session* find(SessionId id);
  void on_identified(SessionId id, Result<procid::PeerIdentity, procid::LookupError> result);
  void on_digest(SessionId id, Result<ExeDigest, std::string> result);
  ExeDigests& digests() { return digests_; }
  TrustedDigests* trusted_digests() { return trusted_ ? &*trusted_ : nullptr; }  // --trust-on-first-use
  // The session is finished: it is destroyed after the current callback returns.
  void retire(SessionId id);
  size_t live_sessions() const { return sessions_.size(); }
  // Connections per executable: true if `exe` may have one more (it is then counted until release).
  bool admit_binary(const std::string& exe);
  void release_binary(const std::string& exe);
  // Whether `addr` (with its port) reaches one of egressd's own listeners (the proxy's, --metrics): the
  // listening address itself, or, when listening on 0.0.0.0 or ::, any loopback or local interface
  // address on that port.
  bool is_own_listener(const sockaddr_storage& addr) const;
  bool stopping() const { return stopping_; }
  uint64_t reloads_rejected() const { return reloads_rejected_; }  // since start: the last good stayed

 private:
  // Descriptors kept free for what is not a session: identification (/proc, sock_diag on the thread
  // pool), the policy watcher, logs, the libuv loop. Each session holds a client and an upstream socket.
  static constexpr uint64_t kReservedFds = 64;
  static constexpr uint64_t kFdsPerSession = 2;
  // Past capacity, this many more connections get a 503; beyond that they are closed unanswered.
  static constexpr uint64_t kRefusalSlots = 64;

  static void uv_on_connection(uv_stream_t* listener, int status) noexcept;
  // How many sessions RLIMIT_NOFILE (read at every accept: it can change at run time) leaves room for.
  uint64_t sessions_within_fd_limit() const;
  void note_policy_loaded();
  static bool reaches(const sockaddr_storage& own, const sockaddr_storage& dest);
  static void uv_on_reap(uv_check_t* check) noexcept;
  void on_connection(int status);
  void on_policy_load_started() override;
  void on_policy_loaded(Result<std::shared_ptr<const policy::Policy>, policy::LoadErrors> loaded,
                        double load_seconds) override;

  uv_loop_t* loop_;  // owned by main
  const Settings& settings_;
  policy::PolicyStore& policies_;
  DecisionLog& deny_log_;
  DecisionLog& access_log_;
  IdentifyQueue identify_;
  Interception& interception_;
  RedirectMemory& redirects_;
  ExeDigests digests_;
  std::optional<TrustedDigests> trusted_;
  Metrics metrics_;
  double policy_loaded_at_ = 0;  // Unix time the policy in force was loaded
  UvHandle<uv_tcp_t> listener_;
  std::unique_ptr<MetricsServer> metrics_server_;
  UvHandle<uv_check_t> reaper_;
  std::unordered_map<std::string, size_t> per_binary_;  // before sessions_: their destructors release
  std::unordered_map<SessionId, std::unique_ptr<Session>> sessions_;
  std::vector<std::unique_ptr<Session>> retired_;
  SessionId next_id_ = 1;
  uint64_t reloads_rejected_ = 0;
  ReloadObserver* reload_observer_ = nullptr;  // owned by command_run; may be null
  PolicyReload policy_reload_;    // destroyed before what its results touch: a late result is dropped
  uint64_t accept_failures_ = 0;  // accept errors since start (EMFILE, ENFILE, ENOMEM, ...)
  uint64_t accept_failures_reported_ = 0;  // of those, how many a console line has already counted
  uint64_t last_accept_report_ms_ = 0;
  bool stopping_ = false;
};

}  // namespace egressd::proxy
