#include "policy/suggest_merge.h"

#include <algorithm>
#include <set>

#include "policy/matcher.h"
#include "policy/policy_text.h"

namespace egressd::policy {
namespace {

std::string lines_text(const std::vector<const Candidate*>& members) {
  std::vector<int> lines;
  for (const Candidate* member : members) lines.push_back(member->denial->line);
  std::sort(lines.begin(), lines.end());
  lines.erase(std::unique(lines.begin(), lines.end()), lines.end());
  std::string out = lines.size() == 1 ? "log line " : "log lines ";
  for (std::size_t i = 0; i < lines.size() && i < kMaxLinesNamed; ++i) {
    out += (i == 0 ? "" : ", ") + std::to_string(lines[i]);
  }
  if (lines.size() > kMaxLinesNamed) out += " and " + std::to_string(lines.size() - kMaxLinesNamed) + " more";
  return out;
}

std::string members_of(const std::vector<const ConnectionGroup*>& groups) {
  std::vector<const Candidate*> members;
  for (const ConnectionGroup* group : groups) {
    members.insert(members.end(), group->members.begin(), group->members.end());
  }
  return members_text(members);
}

bool lists(const Rule& rule, const std::string& binary) {
  return std::any_of(rule.binaries.begin(), rule.binaries.end(), [&](const BinaryPattern& entry) {
    return binary_matches(entry, Caller{binary, {}});
  });
}

class Merger {
 public:
  Merger(const BasePolicy& base, std::vector<ConnectionGroup>& groups) : base_(base), groups_(groups) {
    for (ConnectionGroup& group : groups_) {
      if (!group.dropped) open_.push_back(&group);
    }
  }

  Merges run() {
    join_binaries();
    join_endpoints();
    merges_.unmerged = open_;
    return std::move(merges_);
  }

 private:
  bool denied(const std::string& binary, const std::string& host, uint16_t port) const {
    return std::any_of(groups_.begin(), groups_.end(), [&](const ConnectionGroup& g) {
      return !g.dropped && !g.own_rule && g.binary == binary && g.host == host && g.port == port;
    });
  }

  bool is_open(const ConnectionGroup* group) const {
    return std::find(open_.begin(), open_.end(), group) != open_.end();
  }

  void take(const ConnectionGroup* group) {
    open_.erase(std::remove(open_.begin(), open_.end(), group), open_.end());
  }

  // Adding `binary` to `rule` widens nothing when every host:port the rule lists was denied to it, and
  // none of its endpoints may send it elsewhere by `redirects`.
  bool binary_may_join(const Rule& rule, const std::string& binary) const {
    if (lists(rule, binary)) return false;
    return std::all_of(rule.endpoints.begin(), rule.endpoints.end(), [&](const Endpoint& endpoint) {
      return !endpoint.hostless() && !endpoint.host.is_wildcard && endpoint.redirect_hosts.empty() &&
             std::all_of(endpoint.ports.begin(), endpoint.ports.end(),
                         [&](uint16_t port) { return denied(binary, endpoint.host.text, port); });
    });
  }

  // Adding host:port to `rule` widens nothing when every executable its binaries match (exact entries
  // only, without children), and every binary this plan adds to it, was denied it.
  bool endpoint_may_join(const Rule& rule, const std::vector<std::string>& joining,
                         const ConnectionGroup& group) const {
    if (!lists(rule, group.binary)) return false;
    if (!std::all_of(joining.begin(), joining.end(),
                     [&](const std::string& binary) { return denied(binary, group.host, group.port); })) {
      return false;
    }
    return std::all_of(rule.binaries.begin(), rule.binaries.end(), [&](const BinaryPattern& binary) {
      if (binary.is_glob || binary.children) return false;
      std::vector<std::string> names{binary.path};
      names.insert(names.end(), binary.resolved.begin(), binary.resolved.end());
      return std::any_of(names.begin(), names.end(),
                         [&](const std::string& name) { return denied(name, group.host, group.port); });
    });
  }

  void join_binaries() {
    const Policy& policy = *base_.policy;
    for (std::size_t r = 0; r < policy.rules.size(); ++r) {
      const Rule& rule = policy.rules[r];
      if (!sequence_insertion(base_.text, rule.binaries.front().where)) continue;
      std::set<std::string> binaries;
      for (const ConnectionGroup* group : open_) {
        if (!group->own_rule) binaries.insert(group->binary);
      }
      for (const std::string& binary : binaries) {
        if (!binary_may_join(rule, binary)) continue;
        std::vector<const ConnectionGroup*> covered;
        for (ConnectionGroup* group : std::vector<ConnectionGroup*>(open_)) {
          if (group->binary != binary || group->own_rule) continue;
          const bool in_rule =
              std::any_of(rule.endpoints.begin(), rule.endpoints.end(), [&](const Endpoint& e) {
                return e.host.text == group->host &&
                       std::find(e.ports.begin(), e.ports.end(), group->port) != e.ports.end();
              });
          if (!in_rule) continue;
          covered.push_back(group);
          take(group);
        }
        if (covered.empty()) continue;  // another rule took them already
        merges_.binaries[r].push_back(binary);
        merges_.changes.push_back("rule '" + rule.name + "' (" + where_text(rule.where) + "): add binary " +
                                  binary + ", which was denied every endpoint the rule lists" +
                                  members_of(covered));
      }
    }
  }

  // A rule that already lists the host (at another port) is preferred, else the first in file order.
  void join_endpoints() {
    const Policy& policy = *base_.policy;
    std::map<std::size_t, std::map<std::string, std::vector<uint16_t>>> hosts;
    std::map<std::size_t, std::vector<const ConnectionGroup*>> covered;
    for (ConnectionGroup* group : std::vector<ConnectionGroup*>(open_)) {
      if (group->own_rule || !is_open(group)) continue;
      std::optional<std::size_t> best;
      bool best_names_host = false;
      for (std::size_t r = 0; r < policy.rules.size(); ++r) {
        const Rule& rule = policy.rules[r];
        const auto joining = merges_.binaries.find(r);
        if (!sequence_insertion(base_.text, rule.endpoints.front().where) ||
            !endpoint_may_join(
                rule, joining == merges_.binaries.end() ? std::vector<std::string>{} : joining->second,
                *group)) {
          continue;
        }
        const bool names_host = std::any_of(rule.endpoints.begin(), rule.endpoints.end(),
                                            [&](const Endpoint& e) { return e.host.text == group->host; });
        if (!best || (names_host && !best_names_host)) {
          best = r;
          best_names_host = names_host;
        }
      }
      if (!best) continue;
      const Rule& rule = policy.rules[*best];
      // Every binary of the rule was denied it: those groups are all settled by this one endpoint.
      for (ConnectionGroup* same : std::vector<ConnectionGroup*>(open_)) {
        if (same->own_rule || same->host != group->host || same->port != group->port ||
            !lists(rule, same->binary)) {
          continue;
        }
        covered[*best].push_back(same);
        take(same);
      }
      auto& ports = hosts[*best][group->host];
      if (std::find(ports.begin(), ports.end(), group->port) == ports.end()) ports.push_back(group->port);
    }
    for (auto& [r, by_host] : hosts) {
      const Rule& rule = policy.rules[r];
      std::string added;
      for (auto& [host, ports] : by_host) {
        std::sort(ports.begin(), ports.end());
        for (uint16_t port : ports) added += (added.empty() ? "" : ", ") + format_host_port(host, port);
        merges_.endpoints[r].emplace_back(host, ports);
      }
      merges_.changes.push_back("rule '" + rule.name + "' (" + where_text(rule.where) + "): add endpoint " +
                                added + ", which every binary the rule lists was denied" +
                                members_of(covered[r]));
    }
  }

  const BasePolicy& base_;
  std::vector<ConnectionGroup>& groups_;
  std::vector<ConnectionGroup*> open_;
  Merges merges_;
};

}  // namespace

Merges plan_merges(const BasePolicy& base, std::vector<ConnectionGroup>& groups) {
  return Merger(base, groups).run();
}

std::string members_text(const std::vector<const Candidate*>& members) {
  std::string out = " (" + lines_text(members) + ")";
  for (const Candidate* member : members) {
    if (member->denial->redirected_by.empty()) continue;
    out += "; log line " + std::to_string(member->denial->line) + " was reached by a redirect:";
    for (const std::string& hop : member->denial->redirected_by) out += " " + comment_text(hop) + ";";
    out.pop_back();
  }
  return out;
}

std::string comment_text(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    out += byte < 0x20 || byte == 0x7f ? '?' : c;
  }
  return out;
}

std::string where_text(const SourceLocation& where) {
  return where.file + ":" + std::to_string(where.line);
}

}  // namespace egressd::policy
