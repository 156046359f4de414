// Decision logs: the deny log and the access log, one JSON object per line. A product interface:
// field names are the constants below and are tested field by field. One writer per file, loop thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "procid/peer.h"

namespace egressd::proxy {

namespace field {
inline constexpr const char* kTime = "time";
inline constexpr const char* kEvent = "event";  // "deny", "revoked", "audit" (deny log); "allow" (access log)
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
inline constexpr const char* kRule = "rule";  // the network_policies entry that allowed (or refused, L7)
inline constexpr const char* kHttpRule =
    "http_rule";  // protocol: rest: which access/rule decided the request
inline constexpr const char* kRedirectedBy =
    "redirected_by";                                    // the redirect hops that led here, oldest first
inline constexpr const char* kEngine = "engine";        // "ssrf": the name was allowed, its address was not
inline constexpr const char* kAddresses = "addresses";  // what the name resolved to (engine "ssrf")
inline constexpr const char* kReason = "reason";
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
  std::string policy_hash;
};

// The JSON line (without newline); the time is taken now.
std::string format_decision(const DecisionRecord& record);

class DecisionLog {
 public:
  DecisionLog() = default;
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;
  ~DecisionLog();

  // Opens FILE for appending (mode 0640, created if missing). Without a file, write() does nothing.
  Result<void, std::string> open(const std::string& path);
  bool is_open() const { return fd_ >= 0; }
  void write(const DecisionRecord& record);

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace egressd::proxy
