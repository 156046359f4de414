#include "policy/suggest.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "policy/explain.h"
#include "policy/http_matcher.h"
#include "policy/loader.h"
#include "policy/matcher.h"
#include "policy/patterns.h"
#include "policy/policy_text.h"
#include "policy/suggest_merge.h"

namespace egressd::policy {
namespace {

constexpr std::size_t kMaxTargetsNamed = 10;  // host:ports listed per new rule in its change sentence

// A rule key from the binary's name: "curl", "git-remote-http", unique among `taken` (keys and names).
std::string rule_key_for(const std::string& binary, std::set<std::string>& taken) {
  std::string base;
  for (char c : binary.substr(binary.rfind('/') + 1)) {
    const char lower = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    const bool keep =
        (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9') || lower == '-' || lower == '_';
    base += keep ? lower : '-';
  }
  if (base.empty() || base.front() == '-' || base.front() == '_') base = "binary-" + base;
  std::string key = base;
  for (int n = 2; taken.count(key) != 0; ++n) key = base + "-" + std::to_string(n);
  taken.insert(key);
  return key;
}

const char* access_name(Access access) {
  switch (access) {
    case Access::None:
      return "none";
    case Access::ReadOnly:
      return "read-only";
    case Access::ReadWrite:
      return "read-write";
    case Access::Full:
      return "full";
  }
  return "none";
}

// A new rule for `binary`: its denied host:ports grouped by host, and its refused requests by host:port.
std::string new_rule_yaml(const std::string& key, const std::string& binary,
                          const std::vector<const ConnectionGroup*>& groups,
                          const std::vector<const RequestGroup*>& requests, std::size_t indent) {
  std::vector<std::pair<std::string, std::vector<uint16_t>>> hosts;
  for (const ConnectionGroup* group : groups) {
    auto found =
        std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return h.first == group->host; });
    if (found == hosts.end()) {
      hosts.emplace_back(group->host, std::vector<uint16_t>{});
      found = hosts.end() - 1;
    }
    if (std::find(found->second.begin(), found->second.end(), group->port) == found->second.end()) {
      found->second.push_back(group->port);
    }
  }
  for (auto& [host, ports] : hosts) std::sort(ports.begin(), ports.end());
  std::vector<RestEndpointText> rest;
  for (const RequestGroup* group : requests) {
    auto found = std::find_if(rest.begin(), rest.end(), [&](const RestEndpointText& e) {
      return e.host == group->host && e.port == group->port;
    });
    if (found == rest.end()) {
      rest.push_back({group->host, group->port, {}});
      found = rest.end() - 1;
    }
    found->allows.emplace_back(group->method, group->path);
  }
  return rule_yaml(key, binary, hosts, rest, indent);
}

// What explain() is asked about `candidate`: equal keys get equal answers from one policy.
std::string query_key(const Candidate& candidate) {
  std::string key = candidate.binary + '\0' + candidate.host + '\0' + std::to_string(candidate.denial->port);
  for (const std::string& ancestor : candidate.denial->ancestors) key += '\0' + ancestor;
  if (candidate.request) {
    key += '\1' + candidate.denial->method + '\0' + candidate.request->path + '\0' + candidate.request->query;
  }
  return key;
}

// Why `policy` refuses `candidate` (explain()'s reason, which the proxy agrees with), or nullopt if it
// allows.
std::optional<std::string> refusal(const Policy& policy, const Candidate& candidate) {
  ExplainQuery query;
  query.caller = Caller{candidate.binary, candidate.denial->ancestors};
  query.host = candidate.host;
  query.port = candidate.denial->port;
  if (candidate.request) {
    query.method = candidate.denial->method;
    query.path = candidate.request->path;
    query.query = candidate.request->query;
  }
  const Explanation explanation = explain(policy, query);
  if (explanation.verdict == Verdict::Allow && !explanation.audited) return std::nullopt;
  return explanation.reason;
}

class Planner {
 public:
  Planner(const DenyLog& log, std::string log_name, const BasePolicy* base)
      : log_(log), log_name_(std::move(log_name)), base_(base) {}

  Result<Suggestion, std::string> run() {
    for (const DenyLogProblem& problem : log_.problems) {
      skipped_.emplace_back(problem.line, "malformed, skipped: " + problem.message);
    }
    collect();
    group();
    // Each round that does not settle moves at least one group on (to a rule of its own, or out).
    const std::size_t rounds = 2 * (connections_.size() + requests_.size()) + 2;
    for (std::size_t round = 0; round < rounds; ++round) {
      Result<std::string, std::string> text = render();
      if (!text) return egressd::unexpected(std::move(text.error()));
      const std::string name = base_ != nullptr ? base_->policy->source_path : std::string("<suggested>");
      auto loaded = load_policy_text(*text, name);
      if (!loaded) {
        return egressd::unexpected("the suggested policy does not load (a bug in suggest):\n" +
                                   format_errors(loaded.error()));
      }
      if (!recheck(**loaded)) continue;
      out_.yaml = header() + *text;
      // The header is comments only; load the whole text once more so that what is printed is what loads.
      if (auto final_load = load_policy_text(out_.yaml, name); !final_load) {
        return egressd::unexpected("the suggested policy does not load (a bug in suggest):\n" +
                                   format_errors(final_load.error()));
      }
      return std::move(out_);
    }
    return egressd::unexpected(std::string("no suggestion settled (a bug in suggest)"));
  }

 private:
  void skip(const Denial& denial, const std::string& why) { skipped_.emplace_back(denial.line, why); }

  // explain()'s answers for one policy, by query_key().
  using Answers = std::map<std::string, std::optional<std::string>>;

  static std::optional<std::string> refused_by(const Policy& policy, Answers& answers,
                                               const Candidate& candidate) {
    const std::string key = query_key(candidate);
    if (auto known = answers.find(key); known != answers.end()) return known->second;
    return answers[key] = refusal(policy, candidate);
  }

  // "line 3: why", or "lines 3, 7 and 12 more: why" for lines skipped for the same reason; by first line.
  std::vector<std::string> skipped_by_reason() const {
    std::vector<std::pair<std::string, std::vector<int>>> reasons;
    std::map<std::string, std::size_t> index;
    for (const auto& [line, why] : skipped_) {
      const auto [at, fresh] = index.try_emplace(why, reasons.size());
      if (fresh) reasons.emplace_back(why, std::vector<int>{});
      reasons[at->second].second.push_back(line);
    }
    std::vector<std::pair<int, std::string>> out;
    for (auto& [why, lines] : reasons) {
      std::sort(lines.begin(), lines.end());
      std::string text = lines.size() == 1 ? "line " : "lines ";
      for (std::size_t i = 0; i < lines.size() && i < kMaxLinesNamed; ++i) {
        text += (i == 0 ? "" : ", ") + std::to_string(lines[i]);
      }
      if (lines.size() > kMaxLinesNamed)
        text += " and " + std::to_string(lines.size() - kMaxLinesNamed) + " more";
      out.emplace_back(lines.front(), text + ": " + why);
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> texts;
    for (auto& [line, text] : out) texts.push_back(std::move(text));
    return texts;
  }

  void collect() {
    for (const Denial& denial : log_.denials) {
      const DenialClass kind = classify_denial(denial);
      if (kind.kind == DenialKind::NotPolicy) {
        skip(denial, kind.why);
        continue;
      }
      Candidate candidate;
      candidate.denial = &denial;
      candidate.kind = kind.kind;
      candidate.binary = *denial.binary;
      if (candidate.binary.empty() || candidate.binary.front() != '/' ||
          candidate.binary.find_first_of("*\n\r", 0) != std::string::npos ||
          candidate.binary.find('\0') != std::string::npos) {
        skip(denial, "the binary path '" + comment_text(candidate.binary) +
                         "' cannot be listed exactly (a policy reads '*' in it as a wildcard)");
        continue;
      }
      Result<HostPattern, std::string> host = parse_host_pattern(denial.host);
      if (!host || host->is_wildcard) {
        skip(denial,
             "the host '" + comment_text(denial.host) + "' cannot be listed exactly" +
                 (host ? std::string(" (a policy reads '*' in it as a wildcard)") : ": " + host.error()));
        continue;
      }
      candidate.host = host->text;
      if (denial.method != "CONNECT" && !denial.url.empty()) {
        candidate.request = url_target(denial.url);
        if (!candidate.request) {
          skip(denial, "its URL '" + comment_text(denial.url) + "' has no path");
          continue;
        }
      }
      if (candidate.kind == DenialKind::Request && !prepare_request(candidate)) continue;
      if (base_ != nullptr && !refused_by(*base_->policy, base_answers_, candidate)) {
        skip(denial, "already allowed by " + base_->policy->source_path);
        continue;
      }
      if (base_ != nullptr && !denial.policy_hash.empty() &&
          denial.policy_hash != base_->policy->source_hash) {
        ++other_hash_;
      }
      candidates_.push_back(std::move(candidate));
    }
  }

  bool prepare_request(Candidate& candidate) {
    const Denial& denial = *candidate.denial;
    if (!candidate.request) {
      skip(denial, "an HTTP denial without a request URL");
      return false;
    }
    Result<std::string, std::string> method = parse_http_method(denial.method);
    if (!method || *method == "*") {
      skip(denial, "the method '" + comment_text(denial.method) + "' cannot be listed exactly");
      return false;
    }
    Result<std::string, std::string> path = normalize_request_path(candidate.request->path);
    if (!path) {
      skip(denial, "its path is one egressd refuses (" + path.error() + "); no rule can allow it");
      return false;
    }
    if (path->find('*') != std::string::npos) {
      skip(denial, "its path contains '*', which a rule can only state as a wildcard");
      return false;
    }
    candidate.method = *method;
    candidate.path = *path;
    return true;
  }

  // Groups in the order their first line came; an index by key keeps a long log linear.
  void group() {
    std::map<std::string, std::size_t> connection_index;
    std::map<std::string, std::size_t> request_index;
    for (const Candidate& candidate : candidates_) {
      const uint16_t port = candidate.denial->port;
      std::string key = candidate.binary + '\0' + candidate.host + '\0' + std::to_string(port);
      if (candidate.kind == DenialKind::Connection) {
        auto [at, fresh] = connection_index.try_emplace(std::move(key), connections_.size());
        if (fresh) connections_.push_back({candidate.binary, candidate.host, port, {}, false, false});
        connections_[at->second].members.push_back(&candidate);
      } else {
        key += '\0' + candidate.method + '\0' + candidate.path;
        auto [at, fresh] = request_index.try_emplace(std::move(key), requests_.size());
        if (fresh) {
          requests_.push_back(
              {candidate.binary, candidate.host, port, candidate.method, candidate.path, {}, false});
        }
        requests_[at->second].members.push_back(&candidate);
      }
    }
  }

  // ---- planning -----------------------------------------------------------------------------------

  // What goes into the text this round.
  struct Plan {
    std::map<std::size_t, std::vector<std::string>> binaries;  // rule index -> binary paths to add
    std::map<std::size_t, std::vector<std::pair<std::string, std::vector<uint16_t>>>> endpoints;  // rule ->
    std::map<std::pair<std::size_t, std::size_t>, std::vector<const RequestGroup*>> requests;  // endpoint ->
    std::vector<std::pair<std::string, std::vector<const ConnectionGroup*>>> new_rules;  // binary -> groups
    std::vector<const RequestGroup*> new_requests;  // without a base: rest endpoints in new rules
    std::vector<std::string> changes;
  };

  Plan plan() {
    Plan plan;
    std::vector<ConnectionGroup*> open;
    if (base_ != nullptr) {
      Merges merges = plan_merges(*base_, connections_);
      plan.binaries = std::move(merges.binaries);
      plan.endpoints = std::move(merges.endpoints);
      plan.changes = std::move(merges.changes);
      open = std::move(merges.unmerged);
    } else {
      for (ConnectionGroup& group : connections_) {
        if (!group.dropped) open.push_back(&group);
      }
    }
    // Whatever is left: a rule of its own per binary.
    std::map<std::string, std::vector<const ConnectionGroup*>> by_binary;
    std::vector<std::string> order;
    for (const ConnectionGroup* group : open) {
      if (by_binary.count(group->binary) == 0) order.push_back(group->binary);
      by_binary[group->binary].push_back(group);
    }
    for (const std::string& binary : order) plan.new_rules.emplace_back(binary, by_binary[binary]);
    plan_requests(plan);
    return plan;
  }

  void plan_requests(Plan& plan) {
    for (RequestGroup& group : requests_) {
      if (group.dropped) continue;
      if (base_ == nullptr) {
        plan.new_requests.push_back(&group);
        continue;
      }
      const Policy& policy = *base_->policy;
      const Caller caller{group.binary, group.members.front()->denial->ancestors};
      const Decision decision = decide(policy, {caller, group.host, group.port});
      if (decision.verdict != Verdict::Allow) {
        drop(group, "the connection it was made on is not allowed by " + policy.source_path + " now");
        continue;
      }
      const Endpoint& endpoint = *decision.endpoint;
      if (endpoint.protocol != Protocol::Rest) {
        drop(group, "the endpoint that now allows the connection (" + where_text(endpoint.where) +
                        ") has no HTTP rules to add to");
        continue;
      }
      if (endpoint.hostless() || endpoint.host.is_wildcard) {
        drop(group, "the endpoint that refused it (" + where_text(endpoint.where) +
                        ") is a wildcard: an allow rule there would hold for every host it matches; add an "
                        "endpoint for " +
                        format_host_port(group.host, group.port) + " with that rule by hand");
        continue;
      }
      const bool placeable =
          endpoint.rules.empty()
              ? static_cast<bool>(
                    access_span(base_->text, endpoint.where, next_location(policy, endpoint.where)))
              : static_cast<bool>(allow_rules_insertion(base_->text, endpoint.rules.front().where));
      if (!placeable) {
        drop(group, "the HTTP rules of the endpoint at " + where_text(endpoint.where) +
                        " are laid out in a way suggest cannot add to; add 'allow: { method: " +
                        group.method + ", path: " + comment_text(group.path) + " }' there by hand");
        continue;
      }
      const std::size_t r = static_cast<std::size_t>(decision.rule - policy.rules.data());
      const std::size_t e = static_cast<std::size_t>(decision.endpoint - decision.rule->endpoints.data());
      plan.requests[{r, e}].push_back(&group);
    }
    for (const auto& [index, groups] : plan.requests) {
      const Rule& rule = base_->policy->rules[index.first];
      const Endpoint& endpoint = rule.endpoints[index.second];
      for (const RequestGroup* group : groups) {
        std::string change = "rule '" + rule.name + "', endpoint " +
                             format_host_port(group->host, group->port) + " (" + where_text(endpoint.where) +
                             "): allow " + group->method + " " + group->path;
        if (endpoint.access != Access::None) {
          change += std::string(" (its 'access: ") + access_name(endpoint.access) +
                    "' is written out as the rules it stands for)";
        }
        const bool others =
            !plan.binaries[index.first].empty() ||
            std::any_of(rule.binaries.begin(), rule.binaries.end(), [&](const BinaryPattern& b) {
              return b.is_glob || b.children ||
                     (b.path != group->binary &&
                      std::find(b.resolved.begin(), b.resolved.end(), group->binary) == b.resolved.end());
            });
        if (others) change += "; the rule's other binaries may then make this request too";
        plan.changes.push_back(change + members_text(group->members));
      }
    }
  }

  // ---- the text -----------------------------------------------------------------------------------

  Result<std::string, std::string> render() {
    Plan plan = this->plan();
    std::set<std::string> taken;
    if (base_ != nullptr) {
      for (const Rule& rule : base_->policy->rules) {
        taken.insert(rule.key);
        taken.insert(rule.name);
      }
    }
    // Without a base, HTTP denials go into the binary's new rule, unless a plain endpoint already allows
    // the whole connection there.
    std::map<std::string, std::vector<const RequestGroup*>> requests_by_binary;
    for (const RequestGroup* group : plan.new_requests) {
      const bool covered = std::any_of(plan.new_rules.begin(), plan.new_rules.end(), [&](const auto& rule) {
        return rule.first == group->binary &&
               std::any_of(rule.second.begin(), rule.second.end(), [&](const ConnectionGroup* c) {
                 return c->host == group->host && c->port == group->port;
               });
      });
      if (covered) continue;
      requests_by_binary[group->binary].push_back(group);
      if (std::none_of(plan.new_rules.begin(), plan.new_rules.end(),
                       [&](const auto& rule) { return rule.first == group->binary; })) {
        plan.new_rules.emplace_back(group->binary, std::vector<const ConnectionGroup*>{});
      }
    }
    std::string rules_text = base_ != nullptr && !plan.new_rules.empty() ? "\n" : "";
    const std::size_t indent = 2;
    RuleInsertion at_end;
    if (base_ != nullptr && !plan.new_rules.empty()) {
      Result<RuleInsertion, std::string> found = rule_insertion(base_->text, *base_->policy);
      if (!found) return egressd::unexpected(std::move(found.error()));
      at_end = *found;
    }
    for (const auto& [binary, groups] : plan.new_rules) {
      const std::string key = rule_key_for(binary, taken);
      rules_text += new_rule_yaml(key, binary, groups, requests_by_binary[binary],
                                  base_ != nullptr ? at_end.indent : indent);
      std::vector<std::string> named;
      for (const ConnectionGroup* group : groups) named.push_back(format_host_port(group->host, group->port));
      for (const RequestGroup* group : requests_by_binary[binary]) {
        named.push_back(group->method + " " + group->path + " on " +
                        format_host_port(group->host, group->port));
      }
      std::string targets;
      for (std::size_t i = 0; i < named.size() && i < kMaxTargetsNamed; ++i) {
        targets += (i == 0 ? "" : ", ") + named[i];
      }
      if (named.size() > kMaxTargetsNamed)
        targets += " and " + std::to_string(named.size() - kMaxTargetsNamed) + " more";
      std::vector<const Candidate*> members;
      for (const ConnectionGroup* group : groups)
        members.insert(members.end(), group->members.begin(), group->members.end());
      for (const RequestGroup* group : requests_by_binary[binary]) {
        members.insert(members.end(), group->members.begin(), group->members.end());
      }
      plan.changes.push_back("new rule '" + key + "': " + binary + " to " + targets + members_text(members));
    }
    changes_ = std::move(plan.changes);
    if (base_ == nullptr) return "version: 1\nnetwork_policies:\n" + rules_text;

    const std::string& text = base_->text;
    const Policy& policy = *base_->policy;
    std::vector<TextEdit> edits;
    for (const auto& [r, binaries] : plan.binaries) {
      if (binaries.empty()) continue;  // looked up, never planned
      Result<SequenceInsertion, std::string> at =
          sequence_insertion(text, policy.rules[r].binaries.front().where);
      if (!at) return egressd::unexpected(std::move(at.error()));
      std::vector<std::string> items;
      for (const std::string& binary : binaries) items.push_back("{ path: " + yaml_quoted(binary) + " }");
      edits.push_back({at->offset, 0, sequence_items(text, *at, items)});
    }
    for (const auto& [r, hosts] : plan.endpoints) {
      if (hosts.empty()) continue;
      Result<SequenceInsertion, std::string> at =
          sequence_insertion(text, policy.rules[r].endpoints.front().where);
      if (!at) return egressd::unexpected(std::move(at.error()));
      std::vector<std::string> items;
      for (const auto& [host, ports] : hosts)
        items.push_back("{ host: " + yaml_quoted(host) + ", " + ports_yaml(ports) + " }");
      edits.push_back({at->offset, 0, sequence_items(text, *at, items)});
    }
    for (const auto& [index, groups] : plan.requests) {
      const Endpoint& endpoint = policy.rules[index.first].endpoints[index.second];
      std::vector<std::string> items;
      for (const RequestGroup* group : groups) items.push_back(allow_rule_flow(group->method, group->path));
      if (!endpoint.rules.empty()) {
        Result<SequenceInsertion, std::string> at = allow_rules_insertion(text, endpoint.rules.front().where);
        if (!at) return egressd::unexpected(std::move(at.error()));
        if (at->style == SequenceStyle::Block) {
          for (std::string& item : items) item = item.substr(2, item.size() - 4);  // "allow: {...}"
        }
        edits.push_back({at->offset, 0, sequence_items(text, *at, items)});
        continue;
      }
      Result<TextSpan, std::string> access =
          access_span(text, endpoint.where, next_location(policy, endpoint.where));
      if (!access) return egressd::unexpected(std::move(access.error()));
      std::vector<std::string> all = preset_rules_flow(endpoint.access);
      all.insert(all.end(), items.begin(), items.end());
      std::string replacement = "rules: [";
      for (std::size_t i = 0; i < all.size(); ++i) replacement += (i == 0 ? " " : ", ") + all[i];
      edits.push_back({access->offset, access->length, replacement + " ]"});
    }
    if (!rules_text.empty()) edits.push_back({at_end.offset, at_end.replace, at_end.header + rules_text});
    return apply_edits(text, std::move(edits));
  }

  // ---- checking -----------------------------------------------------------------------------------

  void drop(RequestGroup& group, const std::string& why) {
    group.dropped = true;
    for (const Candidate* member : group.members) skip(*member->denial, why);
  }

  // Whether every denial planned is allowed by `policy`. What is not: a merged connection gets a rule of
  // its own next round; anything else (or on the last round) is dropped, saying why.
  bool recheck(const Policy& policy) {
    Answers answers;
    bool all_allowed = true;
    for (ConnectionGroup& group : connections_) {
      if (group.dropped) continue;
      std::optional<std::string> refused;
      for (const Candidate* member : group.members) {
        if ((refused = refused_by(policy, answers, *member))) break;
      }
      if (!refused) continue;
      all_allowed = false;
      if (!group.own_rule) {
        group.own_rule = true;
        continue;
      }
      group.dropped = true;
      for (const Candidate* member : group.members) {
        skip(*member->denial, "a rule allowing it would still be refused: " + comment_text(*refused));
      }
    }
    for (RequestGroup& group : requests_) {
      if (group.dropped) continue;
      std::optional<std::string> refused;
      for (const Candidate* member : group.members) {
        if ((refused = refused_by(policy, answers, *member))) break;
      }
      if (!refused) continue;
      all_allowed = false;
      drop(group, "an allow rule for it would still be refused: " + comment_text(*refused));
    }
    if (!all_allowed) return false;
    out_.changes = changes_;
    std::stable_sort(skipped_.begin(), skipped_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    out_.skipped = skipped_by_reason();
    out_.skipped_lines = skipped_.size();
    out_.allowed = 0;
    for (const ConnectionGroup& group : connections_)
      out_.allowed += group.dropped ? 0 : group.members.size();
    for (const RequestGroup& group : requests_) out_.allowed += group.dropped ? 0 : group.members.size();
    return true;
  }

  std::string header() const {
    std::string out = "# Suggested by egressd suggest from " + comment_text(log_name_) + ": " +
                      std::to_string(out_.allowed) + (out_.allowed == 1 ? " denial" : " denials") +
                      " allowed";
    out += base_ != nullptr ? ", merged into " + comment_text(base_->policy->source_path) + ".\n" : ".\n";
    out +=
        "# Each addition allows exactly a binary with a host:port, or a method and path, that was denied.\n";
    if (other_hash_ > 0) {
      out += "# " + std::to_string(other_hash_) +
             " of the lines were logged under another policy than this one (" + base_->policy->source_hash +
             ").\n";
    }
    if (!out_.changes.empty()) out += "# Added:\n";
    for (const std::string& change : out_.changes) out += "#   " + comment_text(change) + "\n";
    if (!out_.skipped.empty()) out += "# Not turned into allows:\n";
    for (const std::string& skipped : out_.skipped) out += "#   " + comment_text(skipped) + "\n";
    return out;
  }

  const DenyLog& log_;
  std::string log_name_;
  const BasePolicy* base_;
  std::vector<Candidate> candidates_;  // stable: groups point into it
  std::vector<ConnectionGroup> connections_;
  std::vector<RequestGroup> requests_;
  std::vector<std::string> changes_;
  std::vector<std::pair<int, std::string>> skipped_;  // log line, why
  Answers base_answers_;
  std::size_t other_hash_ = 0;
  Suggestion out_;
};

}  // namespace

Result<Suggestion, std::string> suggest(const DenyLog& log, const std::string& log_name,
                                        const BasePolicy* base) {
  return Planner(log, log_name, base).run();
}

}  // namespace egressd::policy
