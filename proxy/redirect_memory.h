// RedirectMemory: the redirects egressd has seen (3xx with a Location to another host:port), per calling
// process, for a short window. A later denial of that process (or, failing that, of the same binary) for
// the target names the hops that led there; an endpoint's `redirects:` turns a hop into a grant to fetch
// exactly the Location URL (GET or HEAD) without allowing its host in general.
// Plain data on the loop thread; built by main.cpp and passed by reference. Bounded: the oldest hops go
// first.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace egressd::proxy {

struct RedirectHop {
  pid_t pid = 0;
  std::string exe;
  int status = 0;        // 301, 302, 303, 307, 308
  std::string method;    // of the request that was redirected
  std::string from_url;  // that request's URL
  std::string to_url;    // the Location, resolved and without a fragment
  std::string to_host;   // lowercase; IPv6 without brackets
  uint16_t to_port = 0;
  std::string grant_rule;  // non-empty: the rule whose endpoint's `redirects:` lets pid fetch to_url
  std::vector<policy::Cidr>
      grant_allowed_ips;  // that endpoint's allowed_ips: they bound the grant's dial too
  std::chrono::steady_clock::time_point at;
};

class RedirectMemory {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RedirectMemory(std::chrono::milliseconds window = std::chrono::seconds(60), size_t capacity = 4096)
      : window_(window), capacity_(capacity) {}

  void record(RedirectHop hop);

  // The hops that led `pid` (else any process of `exe`) to host:port within the window, oldest first:
  // the latest hop into host:port, preceded by the hop into its from_url, and so on.
  std::vector<RedirectHop> chain_to(pid_t pid, std::string_view exe, std::string_view host, uint16_t port,
                                    Clock::time_point now) const;

  // The latest live grant for `pid` into host:port, or null: a CONNECT there may open so the request
  // inside can be checked.
  const RedirectHop* grant_into(pid_t pid, std::string_view host, uint16_t port, Clock::time_point now) const;
  // The grant that allows exactly this request (GET or HEAD of the very URL), or null.
  const RedirectHop* grant_for(pid_t pid, std::string_view method, std::string_view url,
                               Clock::time_point now) const;

  size_t size() const { return hops_.size(); }

 private:
  bool live(const RedirectHop& hop, Clock::time_point now) const { return now - hop.at <= window_; }

  std::chrono::milliseconds window_;
  size_t capacity_;
  std::deque<RedirectHop> hops_;  // oldest first
};

// JSON array text of `chain` for the deny log and 403 bodies: [{"status","method","from","to"}, ...].
std::string redirect_chain_json(const std::vector<RedirectHop>& chain);
// "302 from GET https://a/x" per hop, joined with ", then ": for reasons and console lines.
std::string redirect_chain_text(const std::vector<RedirectHop>& chain);

}  // namespace egressd::proxy
