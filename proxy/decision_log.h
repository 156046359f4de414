// Decision logs: the deny log and the access log, one JSON object per line. A product interface:
// field names are the constants below and are tested field by field. One writer per file, loop thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "procid/peer.h"

namespace egressd::proxy {

namespace field {
inline constexpr const char* kTime = "time";
// "deny", "revoked", "limit", "audit" (deny log; "audit" lines have would_deny); "allow" (access log)
inline constexpr const char* kEvent = "event";
inline constexpr const char* kSession = "session";
inline constexpr const char* kClient = "client";
inline constexpr const char* kBinary = "binary";
inline constexpr const char* kPid = "pid";
inline constexpr const char* kUid = "uid";
inline constexpr const char* kAncestors = "ancestors";
inline constexpr const char* kMethod = "method";
inline constexpr const char* kHost = "host";
inline constexpr const char* kPort = "port";
inline constexpr const char* kUrl = "url";
inline constexpr const char* kRulesConsidered = "rules_considered";
// The network_policies entry that allowed (or refused, L7); with would_deny, the rule in audit mode
// that let it through (absent, or null in the access log, when only the policy's mode did).
inline constexpr const char* kRule = "rule";
inline constexpr const char* kHttpRule =
    "http_rule";  // protocol: rest: which access/rule decided the request
inline constexpr const char* kRedirectedBy =
    "redirected_by";                                    // the redirect hops that led here, oldest first
inline constexpr const char* kEngine = "engine";        // "ssrf": the name was allowed, its address was not
inline constexpr const char* kAddresses = "addresses";  // what the name resolved to (engine "ssrf")
inline constexpr const char* kReason = "reason";
// Only on what audit mode let through although the policy would deny it: would_deny true, mode "audit".
inline constexpr const char* kWouldDeny = "would_deny";
inline constexpr const char* kMode = "mode";
inline constexpr const char* kPolicyHash = "policy_hash";
}  // namespace field

struct DecisionRecord {
  std::string event;
  uint64_t session = 0;
  std::string client;                            // "ip:port" of the client socket
  const procid::PeerIdentity* caller = nullptr;  // null when the caller could not be identified
  std::string method;
  std::string host;
  uint16_t port = 0;
  std::string url;  // absolute URL when known; omitted when empty
  std::vector<std::string> rules_considered;
  std::string rule;                    // the allowing rule (access log), or the rule whose HTTP rules refused
  std::string http_rule;               // protocol: rest endpoints: the access preset or rule that decided
  std::string redirect_chain_json;     // a JSON array of hops (see RedirectHop), or empty
  std::string engine;                  // which check refused when it is not the policy's rules: "ssrf"
  std::vector<std::string> addresses;  // engine "ssrf": every address the host resolved to
  std::string reason;
  bool would_deny = false;  // audit mode let it through although the policy would deny it
  std::string policy_hash;
};

// The JSON line (without newline); the time is taken now.
std::string format_decision(const DecisionRecord& record);

// How one decision log reports lines it had to drop (disk full, I/O error), so that a failing disk
// does not flood the console: a drop is reported at once unless the last report is less than
// kReportInterval old; a report counts every drop since the one before. Pure: the caller passes the time.
class DropReport {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr Clock::duration kReportInterval = std::chrono::seconds(10);

  struct Report {
    uint64_t lines;     // dropped since the last report, this one included
    bool outage_start;  // the first report since writing last resumed (or since start)
  };
  // A line was dropped at `now`. Returns what to report when a report is due now, else nullopt.
  std::optional<Report> dropped(Clock::time_point now);
  // A line was written. When this ends an outage that was reported, returns how many lines were dropped
  // since writing last resumed (all of them now reported); else nullopt.
  std::optional<uint64_t> written();
  uint64_t total() const { return total_; }  // every line dropped since start

 private:
  uint64_t total_ = 0;
  uint64_t unreported_ = 0;     // dropped since the last report
  uint64_t since_resumed_ = 0;  // dropped since the last "writing again"
  bool outage_reported_ = false;
  std::optional<Clock::time_point> last_report_;
};

// One decision log file. Loop thread only. Writing never blocks on, fails because of, or changes a
// decision: a line that cannot be written is dropped and counted (dropped_lines()), and the console
// hears about it at most every DropReport::kReportInterval. The file follows its path: when the path
// is renamed away or removed (logrotate, rm), the next line goes to a fresh file at that path.
class DecisionLog {
 public:
  DecisionLog() = default;
  // `name` begins console lines about this log: "deny log", "access log".
  explicit DecisionLog(std::string name) : name_(std::move(name)) {}
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;
  ~DecisionLog();

  // Opens FILE for appending (mode 0640, created if missing; non-blocking, so a FIFO needs a reader).
  // /dev/stdout, /dev/stderr and /dev/fd/N work whether the stream is a file, a pipe or a socket.
  // Without a file, write() does nothing.
  Result<void, std::string> open(const std::string& path);
  // Closes the file and opens its path again, creating it if missing (SIGUSR1, after an external
  // rotation). Does nothing when no file was opened. On failure the old file stays open.
  Result<void, std::string> reopen();
  bool is_open() const { return static_cast<bool>(fd_); }
  const std::string& path() const { return path_; }
  void write(const DecisionRecord& record);
  // Lines dropped since start because they could not be written (for metrics).
  uint64_t dropped_lines() const { return drops_.total(); }

 private:
  void follow_path();
  void append(const std::string& line);

  std::string name_ = "decision log";
  std::string path_;
  UniqueFd fd_;
  dev_t dev_ = 0;  // identity of the open file, from fstat at open: compared with stat(path_)
  ino_t ino_ = 0;
  DropReport drops_;
  DropReport::Clock::time_point next_reopen_warning_{};
  bool socket_ = false;    // a standard stream that is a socket: written with send(MSG_DONTWAIT)
  bool line_cut_ = false;  // a short write left a partial line behind: start the next on a new line
};

}  // namespace egressd::proxy
