// Session: one client connection, as a small state machine. It coordinates: parsing (MessageParser),
// the decisions (policy::decide, policy::decide_http), TLS (Leg + tls::TlsEngine), framing
// (http_exchange) and byte pumping happen in their own units.
// Owned by Server; destroyed only through Server::retire, after the current callback has returned.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "policy/destination.h"
#include "policy/matcher.h"
#include "policy/policy.h"
#include "procid/identify.h"
#include "procid/peer.h"
#include "proxy/error.h"
#include "proxy/http_exchange.h"
#include "proxy/leg.h"
#include "proxy/message_parser.h"
#include "proxy/offloop.h"
#include "proxy/redirect_memory.h"
#include "proxy/target.h"
#include "proxy/uv_handle.h"

namespace egressd::proxy {

class Server;
struct DecisionRecord;

class Session final : private MessageSink, private LegEvents {
 public:
  // A refused request's body is read and dropped up to this size; past it the connection is closed.
  static constexpr uint64_t kMaxDiscardBytes = 1024 * 1024;
  // After egressd's own final response, how long to wait for the client's EOF before closing.
  static constexpr uint64_t kLingerMs = 2'000;
  // Hashing the caller's executable (once per binary version; a large one under load can be slow).
  static constexpr uint64_t kDigestTimeoutMs = 60'000;

  enum class Phase {
    ReadingHead,      // llhttp until the end of a request head (absolute-form, or inside a CONNECT)
    Identifying,      // the head is in; waiting for procid on the thread pool
    Verifying,        // allowed by name: hashing the caller's executable (sha256 pin, trust on first use)
    Resolving,        // uv_getaddrinfo; entered only after the name was allowed
    Connecting,       // upstream TCP connect, then upstream TLS when terminating; connect timer armed
    Sniffing,         // CONNECT answered 200; the first bytes tell TLS, HTTP or an opaque stream
    ClientHandshake,  // TLS with the client, presenting a leaf minted for the CONNECT host
    Tunneling,        // opaque bytes both ways (tls: skip, non-HTTP, an upgraded exchange)
    Forwarding,       // one HTTP exchange: request body up, response down
    Discarding,       // an HTTP request was refused with keep-alive; its body is read and dropped
    Draining,         // egressd's own final response is being flushed; the client is then closed
    Closed,           // handles are closing; every later event is ignored
  };

  Session(Server& server, SessionId id);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() override;

  // Accepts the pending connection on `listener`; returns the connection's tuple.
  Result<procid::TcpTuple, std::string> accept(uv_stream_t* listener);
  void start();  // begins reading the first request head
  // egressd is at --max-connections: answer 503 at once, without reading or identifying anything.
  void refuse_at_capacity(const std::string& why);
  void on_identified(Result<procid::PeerIdentity, procid::LookupError> result);
  void on_resolved(int status, addrinfo* answers);  // takes ownership of answers
  void on_digest(Result<ExeDigest, std::string> result);
  // A new policy is in force: keep going if it still allows what this session does, else close.
  void recheck(const std::shared_ptr<const policy::Policy>& policy);
  void stop();  // the server is shutting down

  SessionId id() const { return id_; }
  Phase phase() const { return phase_; }
  uint64_t bytes_up() const { return bytes_up_; }  // client to origin, so far
  uint64_t bytes_down() const { return bytes_down_; }

 private:
  static void uv_on_timer(uv_timer_t* timer) noexcept;

  // MessageSink: the upstream response head, and body bytes of either side.
  bool on_head(MessageParser& parser, const MessageHead& head) override;
  void on_body(MessageParser& parser, std::string_view bytes) override;

  // LegEvents.
  void on_leg_data(LegId leg, std::string_view bytes) override;
  void on_leg_end(LegId leg, int status) override;
  void on_leg_connected(LegId leg, int status) override;
  void on_leg_handshake(LegId leg, Result<void, tls::TlsError> result) override;
  void on_leg_write_failed(LegId leg, std::string_view why) override;
  void on_leg_shutdown_done(LegId leg) override;
  void on_leg_backlog(LegId leg, bool high) override;

  void transition_to(Phase next);
  void on_timer();

  // session.cpp: requests and decisions.
  void feed_client(std::string_view bytes);
  void on_request_head();
  Result<Target, std::string> inner_target(const MessageHead& head) const;
  void decide_and_go();
  void go_upstream();  // reuse the upstream connection if it serves target_, else resolve and dial
  bool decide_http_request(const policy::Rule& rule, const policy::Endpoint& endpoint);
  // Why a session is refused: decides the 403's error code, and the reason and engine the metrics count.
  enum class DenyKind {
    NoRule,         // policy: no rule lets this binary reach host:port
    Revoked,        // policy: a reload took away what this session was doing
    CallerUnknown,  // identity: the executable behind the socket is not known
    BinaryDigest,   // identity: the executable does not hash as pinned or trusted, or could not be hashed
    PidReused,      // identity: the pid names another process by the time its executable was hashed
    Destination,    // ssrf: where the allowed name resolves may not be dialled
    OwnListener,    // ssrf: the address is one of egressd's own listeners
    Fronting,       // protocol: the SNI or Host names another host than the CONNECT
    Uninspectable,  // protocol: HTTP rules apply, but the stream cannot be read
  };
  static const char* deny_reason(DenyKind kind);  // the metrics' reason label: "no_rule", ...
  static const char* deny_engine(DenyKind kind);  // "policy", "identity", "ssrf", "protocol"
  void deny(const std::string& reason, const std::vector<std::string>& rules_considered, const char* event,
            DenyKind kind);
  void refuse_request(const policy::Rule& rule, const std::string& http_rule, const std::string& reason);
  void respond_error(const Error& error);  // egressd's own response, then close
  void finish(std::string_view why);       // close everything and retire; the decision was logged already
  DecisionRecord record_for(const char* event) const;
  std::vector<RedirectHop> redirect_chain() const;  // the hops that led this caller to target_
  bool allow_by_redirect_grant();                   // L4 said no: does a redirect grant cover this?

  // session_audit.cpp: what audit mode lets through although the policy would deny it.
  void allow_by_audit(const policy::Decision& decision);  // decide() said no, but `decision.audited`
  // A reload would revoke what this session does, but audit mode lets it stay; `in_use`: bytes flow.
  void keep_by_audit(const std::shared_ptr<const policy::Policy>& next, const policy::Decision& decision,
                     bool in_use);
  // The one deny-log line (and console line) for a would-be denial; returns its redirected_by JSON, or "".
  std::string log_would_deny(const std::string& rule, const std::string& http_rule, const std::string& reason,
                             const std::vector<std::string>& rules_considered, std::string_view what);
  void remember_redirect(const MessageHead& response);

  // session_upstream.cpp: DNS, connect, what a CONNECT carries, TLS with both sides.
  void start_resolve();
  void dial_checked();  // every address in addresses_ must pass the destination check, then connect_next()
  void connect_next();
  void on_upstream_ready();
  void start_upstream_tls();
  void sniff(std::string_view first_bytes);
  void start_client_tls(std::string_view client_hello);
  void on_client_tls_ready();
  void start_tunnel(std::string_view upstream_bytes);

  // session_exchange.cpp: one HTTP exchange.
  void start_exchange();
  void feed_upstream(std::string_view bytes);
  void on_response_complete(std::string_view rest);
  void next_request();

  void close_upstream();
  void arm_timer(uint64_t ms);
  Leg& leg(LegId id) { return id == LegId::Client ? client_ : upstream_; }
  std::string caller_text() const;
  const procid::PeerIdentity* caller() const;

  Server& server_;
  const SessionId id_;
  Phase phase_ = Phase::ReadingHead;
  Leg client_;
  Leg upstream_;
  UvHandle<uv_timer_t> timer_;
  std::string client_address_;

  std::optional<Result<procid::PeerIdentity, procid::LookupError>> identity_;
  std::string admitted_exe_;               // counted by Server::admit_binary; released when the session goes
  std::optional<std::string> exe_sha256_;  // the caller's executable, hashed once per session
  // Why `decision`'s binary may not connect after all (its sha256 pin, or the digest trusted on first
  // use, differs from exe_sha256_), or nothing. Records a first use.
  std::optional<std::string> digest_refusal(const policy::Decision& decision);
  bool digest_needed(const policy::Decision& decision) const;
  std::unique_ptr<MessageParser> client_parser_;    // one per stream of requests (a new one inside a CONNECT)
  std::unique_ptr<MessageParser> upstream_parser_;  // one per exchange
  std::string pending_client_;                      // client bytes read but not yet consumed (after a pause)

  // Set once a CONNECT's stream turned out to be HTTP (terminated TLS, or plaintext): every request that
  // follows is for this authority, and its Host must say so.
  std::optional<Target> tunnel_;

  // The request being decided or served.
  bool is_connect_ = false;
  Target target_;
  std::string url_;                               // absolute URL of an HTTP request
  std::shared_ptr<const policy::Policy> policy_;  // the snapshot that allowed target_
  const policy::Rule* rule_ = nullptr;  // in *policy_: the allowing rule (audit: the audit rule, or null)
  const policy::Endpoint* endpoint_ = nullptr;  // in *policy_: the allowing endpoint (null in audit)
  // No rule allows target_: a redirect-scoped grant opened this CONNECT, and only the granted URL may
  // be fetched inside it (so its stream must be TLS or HTTP egressd can read).
  bool by_redirect_grant_ = false;
  // No rule allows target_, but audit mode lets it through (rule_: the rule in audit mode it is
  // attributed to, or null; endpoint_ null). A CONNECT is then relayed unopened: no HTTP rules apply.
  bool allowed_by_audit_ = false;
  // Where target_'s addresses may lie (policy/destination.h): from the allowing endpoint, or from the
  // endpoint whose `redirects:` granted the fetch (as a wildcard host, with its allowed_ips), or, in
  // audit mode without an endpoint, as a wildcard host without allowed_ips (public addresses only).
  struct DestinationRules {
    std::string rule;  // empty: no rule (audit mode of the policy)
    bool exact_host = false;
    std::optional<policy::IpAddress> named_ip;
    std::vector<policy::Cidr> allowed_ips;
    bool by_audit = false;  // audit mode let target_ through: a refusal says audit does not relax it
  };
  DestinationRules destination_;
  std::vector<sockaddr_storage> addresses_;
  std::string last_connect_error_;
  std::string upstream_authority_;  // what upstream_ is connected to; never reused for another

  // The exchange in progress (Forwarding).
  BodyFraming request_framing_ = BodyFraming::None;
  BodyFraming response_framing_ = BodyFraming::None;
  bool request_was_head_ = false;
  bool request_done_ = false;
  bool response_started_ = false;
  bool close_client_after_ = false;

  uint64_t discarded_bytes_ = 0;  // Discarding: body bytes of the refused request dropped so far
  uint64_t last_activity_ms_ = 0;
  uint64_t bytes_up_ = 0;
  uint64_t bytes_down_ = 0;
  uint64_t accepted_ns_ = 0;  // uv_hrtime() at accept: identification latency is measured from here
};

const char* phase_name(Session::Phase phase);

}  // namespace egressd::proxy
