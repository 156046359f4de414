#include "proxy/redirect_memory.h"

#include <algorithm>

#include <fmt/format.h>

#include "proxy/json_text.h"

namespace egressd::proxy {
namespace {

constexpr size_t kMaxChain = 16;  // a redirect loop must not make a chain without end

}  // namespace

void RedirectMemory::record(RedirectHop hop) {
  // Drop what the window has passed, then the oldest beyond capacity.
  while (!hops_.empty() && !live(hops_.front(), hop.at)) hops_.pop_front();
  hops_.push_back(std::move(hop));
  while (hops_.size() > capacity_) hops_.pop_front();
}

std::vector<RedirectHop> RedirectMemory::chain_to(pid_t pid, std::string_view exe, std::string_view host,
                                                  uint16_t port, Clock::time_point now) const {
  // The same process first; a hop seen by another process of the same binary only when it has none.
  for (const bool by_pid : {true, false}) {
    const auto same_caller = [&](const RedirectHop& hop) { return by_pid ? hop.pid == pid : hop.exe == exe; };
    const RedirectHop* last = nullptr;
    for (auto it = hops_.rbegin(); it != hops_.rend(); ++it) {
      if (live(*it, now) && same_caller(*it) && it->to_host == host && it->to_port == port) {
        last = &*it;
        break;
      }
    }
    if (last == nullptr) continue;
    std::vector<RedirectHop> chain{*last};
    while (chain.size() < kMaxChain) {
      const RedirectHop& head = chain.front();
      const RedirectHop* before = nullptr;
      for (const RedirectHop& hop : hops_) {  // the latest hop into head's URL, recorded before head
        if (hop.at > head.at || &hop == last) continue;
        if (live(hop, now) && same_caller(hop) && hop.to_url == head.from_url) before = &hop;
      }
      if (before == nullptr || std::any_of(chain.begin(), chain.end(), [&](const RedirectHop& h) {
            return h.from_url == before->from_url;
          })) {
        break;
      }
      chain.insert(chain.begin(), *before);
    }
    return chain;
  }
  return {};
}

const RedirectHop* RedirectMemory::grant_into(pid_t pid, std::string_view host, uint16_t port,
                                              Clock::time_point now) const {
  for (auto it = hops_.rbegin(); it != hops_.rend(); ++it) {
    if (!it->grant_rule.empty() && it->pid == pid && it->to_host == host && it->to_port == port &&
        live(*it, now)) {
      return &*it;
    }
  }
  return nullptr;
}

const RedirectHop* RedirectMemory::grant_for(pid_t pid, std::string_view method, std::string_view url,
                                             Clock::time_point now) const {
  if (method != "GET" && method != "HEAD") return nullptr;
  for (auto it = hops_.rbegin(); it != hops_.rend(); ++it) {
    if (!it->grant_rule.empty() && it->pid == pid && it->to_url == url && live(*it, now)) return &*it;
  }
  return nullptr;
}

std::string redirect_chain_json(const std::vector<RedirectHop>& chain) {
  std::vector<std::string> objects;
  objects.reserve(chain.size());
  for (const RedirectHop& hop : chain) {
    JsonObject object;
    object.field("status", int64_t{hop.status})
        .field("method", hop.method)
        .field("from", hop.from_url)
        .field("to", hop.to_url);
    objects.push_back(object.str());
  }
  return json_array(objects);
}

std::string redirect_chain_text(const std::vector<RedirectHop>& chain) {
  std::string text;
  for (const RedirectHop& hop : chain) {
    if (!text.empty()) text += ", then ";
    text += fmt::format("{} from {} {}", hop.status, hop.method, hop.from_url);
  }
  return text;
}

}  // namespace egressd::proxy
