#include "policy/policy_text.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace egressd::policy {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::size_t line_start(std::string_view text, std::size_t offset) {
  const std::size_t newline = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  return offset == 0 || newline == std::string_view::npos ? 0 : newline + 1;
}

// The offset just after the last non-space character before `offset`.
std::size_t back_over_space(std::string_view text, std::size_t offset) {
  while (offset > 0 && is_space(text[offset - 1])) --offset;
  return offset;
}

std::string unsupported(const SourceLocation& where, std::string_view what) {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.col) + ": " +
         std::string(what);
}

// The item starting at `offset`: in a block sequence when only "  - " stands before it on its line, in a
// flow sequence when '[' comes right before it.
Result<SequenceInsertion, std::string> insertion_at(std::string_view text, std::size_t offset,
                                                    const SourceLocation& where) {
  const std::size_t start = line_start(text, offset);
  const std::string_view prefix = text.substr(start, offset - start);
  const std::size_t dash = prefix.find_first_not_of(' ');
  if (dash != std::string_view::npos && prefix[dash] == '-' && dash + 1 < prefix.size() &&
      prefix.find_first_not_of(' ', dash + 1) == std::string_view::npos) {
    return SequenceInsertion{start, SequenceStyle::Block, dash};
  }
  const std::size_t before = back_over_space(text, offset);
  if (before > 0 && text[before - 1] == '[') return SequenceInsertion{before, SequenceStyle::Flow, 0};
  return egressd::unexpected(unsupported(where, "a sequence laid out in a way suggest cannot add to"));
}

}  // namespace

std::size_t offset_of(std::string_view text, const SourceLocation& where) {
  std::size_t offset = 0;
  for (int line = 1; line < where.line; ++line) {
    const std::size_t newline = text.find('\n', offset);
    if (newline == std::string_view::npos) return text.size();
    offset = newline + 1;
  }
  return std::min(text.size(), offset + static_cast<std::size_t>(std::max(where.col, 1) - 1));
}

Result<SequenceInsertion, std::string> sequence_insertion(std::string_view text,
                                                          const SourceLocation& first_item) {
  return insertion_at(text, offset_of(text, first_item), first_item);
}

Result<SequenceInsertion, std::string> allow_rules_insertion(std::string_view text,
                                                             const SourceLocation& first_allow) {
  // Back from the rule's mapping over "allow:" to where the item starts: "- allow:" or "{ allow:".
  std::size_t at = back_over_space(text, offset_of(text, first_allow));
  constexpr std::string_view kKey = "allow";
  if (at == 0 || text[at - 1] != ':') {
    return egressd::unexpected(unsupported(first_allow, "an allow rule not written as 'allow: {...}'"));
  }
  at = back_over_space(text, at - 1);
  if (at < kKey.size() || text.substr(at - kKey.size(), kKey.size()) != kKey) {
    return egressd::unexpected(unsupported(first_allow, "an allow rule not written as 'allow: {...}'"));
  }
  at -= kKey.size();
  const std::size_t before = back_over_space(text, at);
  if (before > 0 && text[before - 1] == '{') {  // [ { allow: {...} }, ... ]
    const std::size_t outer = back_over_space(text, before - 1);
    if (outer > 0 && text[outer - 1] == '[') return SequenceInsertion{outer, SequenceStyle::Flow, 0};
    return egressd::unexpected(unsupported(first_allow, "a 'rules' sequence suggest cannot add to"));
  }
  return insertion_at(text, at, first_allow);
}

Result<TextSpan, std::string> access_span(std::string_view text, const SourceLocation& endpoint,
                                          const SourceLocation& bound) {
  const std::size_t begin = offset_of(text, endpoint);
  const std::size_t end = bound.line == 0 ? text.size() : offset_of(text, bound);
  std::vector<TextSpan> found;
  constexpr std::string_view kKey = "access";
  for (std::size_t at = text.find(kKey, begin); at != std::string_view::npos && at < end;
       at = text.find(kKey, at + 1)) {
    if (at > 0 && !is_space(text[at - 1]) && text[at - 1] != '{' && text[at - 1] != ',') continue;
    const std::size_t start_of_line = line_start(text, at);
    if (text.substr(start_of_line, at - start_of_line).find('#') != std::string_view::npos) continue;
    std::size_t pos = at + kKey.size();
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
    if (pos >= text.size() || text[pos] != ':') continue;
    ++pos;
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
    std::size_t value_end = pos;
    if (pos < text.size() && (text[pos] == '"' || text[pos] == '\'')) {
      value_end = text.find(text[pos], pos + 1);
      if (value_end == std::string_view::npos) continue;
      ++value_end;
    } else {
      while (value_end < text.size() && !is_space(text[value_end]) && text[value_end] != ',' &&
             text[value_end] != '}' && text[value_end] != '#') {
        ++value_end;
      }
    }
    std::string_view value = text.substr(pos, value_end - pos);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\''))
      value = value.substr(1, value.size() - 2);
    if (value != "read-only" && value != "read-write" && value != "full") continue;
    // In block style, a comment after the preset describes the preset: it goes with it.
    std::size_t cut = value_end;
    const std::size_t line_end = std::min(text.find('\n', value_end), text.size());
    const std::string_view rest = text.substr(value_end, line_end - value_end);
    const std::size_t comment = rest.find_first_not_of(" \t");
    if (comment != std::string_view::npos && rest[comment] == '#') cut = line_end;
    found.push_back({at, cut - at});
  }
  if (found.size() != 1) {
    return egressd::unexpected(
        unsupported(endpoint, "the endpoint's 'access' preset could not be found exactly once in the text"));
  }
  return found.front();
}

Result<RuleInsertion, std::string> rule_insertion(std::string_view text, const Policy& policy) {
  if (policy.rules.empty()) {
    // "network_policies:" with nothing (or {}, ~, null) after it, or no such key at all.
    std::size_t start = 0;
    while (start < text.size()) {
      const std::size_t end = std::min(text.find('\n', start), text.size());
      const std::string_view line = text.substr(start, end - start);
      if (line.starts_with("network_policies")) {
        std::string_view rest = line.substr(std::string_view("network_policies").size());
        const std::size_t comment = rest.find('#');
        if (comment != std::string_view::npos) rest = rest.substr(0, comment);
        std::string value;
        for (char c : rest) {
          if (!is_space(c)) value += c;
        }
        if (value != ":" && value != ":{}" && value != ":~" && value != ":null") {
          return egressd::unexpected(
              std::string("the policy's 'network_policies' is laid out in a way suggest "
                          "cannot add to"));
        }
        return RuleInsertion{start, end - start + (end < text.size() ? 1 : 0), 2, "network_policies:\n"};
      }
      start = end + 1;
    }
    const bool newline = text.empty() || text.back() == '\n';
    return RuleInsertion{text.size(), 0, 2, std::string(newline ? "" : "\n") + "network_policies:\n"};
  }
  const SourceLocation& last = policy.rules.back().where;
  const std::size_t key = offset_of(text, last);
  const std::size_t start = line_start(text, key);
  const std::string_view prefix = text.substr(start, key - start);
  if (prefix.find_first_not_of(' ') != std::string_view::npos) {
    return egressd::unexpected(
        unsupported(last, "'network_policies' is not a block mapping suggest can add to"));
  }
  const std::size_t indent = prefix.size();
  // The last rule ends before the first line indented no deeper than its key; comments and blank lines
  // after its last line are left where they are.
  std::size_t insert = std::min(text.find('\n', key), text.size());
  std::size_t pos = insert;
  while (pos < text.size()) {
    const std::size_t begin = pos + 1;
    if (begin >= text.size()) break;
    const std::size_t end = std::min(text.find('\n', begin), text.size());
    const std::string_view line = text.substr(begin, end - begin);
    const std::size_t first = line.find_first_not_of(" \t\r");
    pos = end;
    if (first == std::string_view::npos || line[first] == '#') continue;
    if (first <= indent) break;
    insert = end;
  }
  // Insert after the newline that ends the rule's last line (adding one at the end of the text).
  if (insert < text.size()) return RuleInsertion{insert + 1, 0, indent, {}};
  return RuleInsertion{text.size(), 0, indent, "\n"};
}

std::string apply_edits(std::string_view text, std::vector<TextEdit> edits) {
  std::stable_sort(edits.begin(), edits.end(),
                   [](const TextEdit& a, const TextEdit& b) { return a.offset < b.offset; });
  std::string out;
  std::size_t copied = 0;
  for (const TextEdit& edit : edits) {
    const std::size_t at = std::clamp(edit.offset, copied, text.size());
    out.append(text.substr(copied, at - copied));
    out += edit.text;
    copied = std::min(text.size(), at + edit.length);
  }
  out.append(text.substr(copied));
  return out;
}

std::string yaml_quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\x%02x", byte);
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string ports_yaml(const std::vector<uint16_t>& ports) {
  if (ports.size() == 1) return "port: " + std::to_string(ports.front());
  std::string out = "ports: [";
  for (std::size_t i = 0; i < ports.size(); ++i) out += (i == 0 ? "" : ", ") + std::to_string(ports[i]);
  return out + "]";
}

std::string allow_rule_flow(std::string_view method, std::string_view path) {
  return "{ allow: { method: " + yaml_quoted(method) + ", path: " + yaml_quoted(path) + " } }";
}

std::vector<std::string> preset_rules_flow(Access access) {
  switch (access) {
    case Access::None:
      return {};
    case Access::ReadOnly:
      return {allow_rule_flow("GET", "**"), allow_rule_flow("OPTIONS", "**")};
    case Access::ReadWrite:
      return {allow_rule_flow("GET", "**"), allow_rule_flow("OPTIONS", "**"), allow_rule_flow("POST", "**"),
              allow_rule_flow("PUT", "**"), allow_rule_flow("PATCH", "**")};
    case Access::Full:
      return {allow_rule_flow("*", "**")};
  }
  return {};
}

std::string sequence_items(std::string_view text, const SequenceInsertion& at,
                           const std::vector<std::string>& flow_items) {
  std::string out;
  for (const std::string& item : flow_items) {
    if (at.style == SequenceStyle::Block) {
      out += std::string(at.indent, ' ') + "- " + item + "\n";
    } else {
      out += " " + item + ",";
    }
  }
  const bool spaced = at.offset < text.size() && is_space(text[at.offset]);
  if (at.style == SequenceStyle::Flow && !spaced) out += " ";
  return out;
}

std::string rule_yaml(std::string_view key, std::string_view binary,
                      const std::vector<std::pair<std::string, std::vector<uint16_t>>>& hosts,
                      const std::vector<RestEndpointText>& rest, std::size_t indent) {
  const std::string k(indent, ' ');
  std::string out = k + std::string(key) + ":\n" + k + "  endpoints:\n";
  for (const auto& [host, ports] : hosts) {
    out += k + "    - { host: " + yaml_quoted(host) + ", " + ports_yaml(ports) + " }\n";
  }
  for (const RestEndpointText& endpoint : rest) {
    out += k + "    - host: " + yaml_quoted(endpoint.host) + "\n" + k +
           "      port: " + std::to_string(endpoint.port) + "\n" + k + "      protocol: rest\n" + k +
           "      rules:\n";
    for (const auto& [method, path] : endpoint.allows) {
      out +=
          k + "        - allow: { method: " + yaml_quoted(method) + ", path: " + yaml_quoted(path) + " }\n";
    }
  }
  return out + k + "  binaries:\n" + k + "    - { path: " + yaml_quoted(binary) + " }\n";
}

SourceLocation next_location(const Policy& policy, const SourceLocation& where) {
  SourceLocation next;
  const auto consider = [&](const SourceLocation& candidate) {
    const auto key = std::pair(candidate.line, candidate.col);
    if (key <= std::pair(where.line, where.col)) return;
    if (next.line == 0 || key < std::pair(next.line, next.col)) next = candidate;
  };
  for (const Rule& rule : policy.rules) {
    consider(rule.where);
    for (const Endpoint& endpoint : rule.endpoints) {
      consider(endpoint.where);
      for (const HttpRule& http : endpoint.rules) consider(http.where);
      for (const HttpRule& http : endpoint.deny_rules) consider(http.where);
    }
    for (const BinaryPattern& binary : rule.binaries) consider(binary.where);
  }
  return next;
}

}  // namespace egressd::policy
