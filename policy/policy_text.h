// Edits to a policy's YAML text that keep everything else as written (comments, order, quoting, layout),
// for `egressd suggest`: where a new item goes into a sequence, where an `access` preset stands, where a
// new rule goes, and the text of what goes in. Positions come from the loaded Policy's SourceLocations. A
// layout these functions do not recognise is an error, never a guess; whatever they produce is loaded and
// checked again by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "policy/policy.h"

namespace egressd::policy {

enum class SequenceStyle { Block, Flow };

// Where new items go: before the first item of a block sequence (a line of their own, `indent` spaces
// and "- "), or right after the '[' of a flow sequence (" item,").
struct SequenceInsertion {
  std::size_t offset = 0;
  SequenceStyle style = SequenceStyle::Block;
  std::size_t indent = 0;  // Block: the column of the first item's '-'
};

// `first_item` is where the sequence's first item (a node) starts: an endpoint's or binary's `where`.
Result<SequenceInsertion, std::string> sequence_insertion(std::string_view text,
                                                          const SourceLocation& first_item);

// The same for an endpoint's `rules`, whose items are `- allow: {...}`: `first_allow` is the `where` of the
// first rule (the mapping after `allow:`).
Result<SequenceInsertion, std::string> allow_rules_insertion(std::string_view text,
                                                             const SourceLocation& first_allow);

// Where an endpoint's `access: <preset>` stands (key and value; in block style also a comment after it on
// that line), searched from the endpoint's `where` up to `bound` (the next position the Policy knows).
struct TextSpan {
  std::size_t offset = 0;
  std::size_t length = 0;
};
Result<TextSpan, std::string> access_span(std::string_view text, const SourceLocation& endpoint,
                                          const SourceLocation& bound);

// Where a new rule goes: after the last rule of `network_policies`, as lines indented by `indent`. When the
// policy has no rules, `replace` covers a `network_policies:` line with no rules (or is empty at the end of
// the text) and `header` must be written before the rules.
struct RuleInsertion {
  std::size_t offset = 0;
  std::size_t replace = 0;  // bytes at offset that the insertion replaces
  std::size_t indent = 2;
  std::string header;  // "network_policies:\n" when the rules need one, else empty
};
Result<RuleInsertion, std::string> rule_insertion(std::string_view text, const Policy& policy);

// The byte offset of a 1-based line and column, or text.size() past the end.
std::size_t offset_of(std::string_view text, const SourceLocation& where);

struct TextEdit {
  std::size_t offset = 0;
  std::size_t length = 0;  // bytes replaced
  std::string text;
};
// `edits` applied to `text`; they must not overlap. Edits at the same offset keep their order.
std::string apply_edits(std::string_view text, std::vector<TextEdit> edits);

// A YAML double-quoted scalar: "text", with '"', '\\' and control characters escaped.
std::string yaml_quoted(std::string_view text);

// ---- what goes in: YAML text for new items (scalars double-quoted) ------------------------------------

// "port: 443" or "ports: [80, 443]".
std::string ports_yaml(const std::vector<uint16_t>& ports);
// `{ allow: { method: "GET", path: "/x" } }`.
std::string allow_rule_flow(std::string_view method, std::string_view path);
// The allow rules an `access` preset stands for, as allow_rule_flow() items (OpenShell's presets; a rule
// for GET also covers HEAD): what a preset is written out as when a rule must be added beside it.
std::vector<std::string> preset_rules_flow(Access access);
// `flow_items` as new items of a sequence at `at` in `text`: lines of their own, or " item," each.
std::string sequence_items(std::string_view text, const SequenceInsertion& at,
                           const std::vector<std::string>& flow_items);

// A new rule, as lines indented by `indent`: plain endpoints (a host and its ports), `protocol: rest`
// endpoints with exact allow rules, and one binary.
struct RestEndpointText {
  std::string host;
  uint16_t port = 0;
  std::vector<std::pair<std::string, std::string>> allows;  // method, path
};
std::string rule_yaml(std::string_view key, std::string_view binary,
                      const std::vector<std::pair<std::string, std::vector<uint16_t>>>& hosts,
                      const std::vector<RestEndpointText>& rest, std::size_t indent);

// The first position `policy` knows of after `where`: where the text of what starts at `where` ends at the
// latest (a bound for searching inside one endpoint).
SourceLocation next_location(const Policy& policy, const SourceLocation& where);

}  // namespace egressd::policy
