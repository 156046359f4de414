// Fuzz target: the policy's pattern matching. The input is a pattern and a subject, split at the first NUL
// or newline (without one, the subject is the pattern itself). The pattern is tried as a host pattern, a
// path glob and a value glob; the subject as a host, a path, a value and a request path to normalize.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/check.h"
#include "policy/destination.h"
#include "policy/http_matcher.h"
#include "policy/matcher.h"
#include "policy/patterns.h"

namespace {

namespace policy = egressd::policy;

std::string ascii_upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A host the wildcard pattern must match: "**" as one label becomes two, every other '*' one character.
std::string instance_of(const policy::HostPattern& pattern) {
  std::string host;
  for (const std::string& label : pattern.labels) {
    if (!host.empty()) host += '.';
    if (label == "**") {
      host += "a.b";
      continue;
    }
    for (char c : label) host += c == '*' ? 'x' : c;
  }
  return host;
}

void check_host_pattern(std::string_view pattern_text, std::string_view subject) {
  auto pattern = policy::parse_host_pattern(pattern_text);
  if (!pattern) {
    EGRESSD_CHECK(!pattern.error().empty());
    return;
  }
  EGRESSD_CHECK(!pattern->text.empty());
  EGRESSD_CHECK(!policy::host_matches(*pattern, ""));
  // A pattern without a wildcard matches its own (normalized) text; a wildcard one, any instance of it.
  EGRESSD_CHECK(policy::host_matches(*pattern, pattern->is_wildcard ? instance_of(*pattern) : pattern->text));
  const bool matches = policy::host_matches(*pattern, subject);
  EGRESSD_CHECK(matches == policy::host_matches(*pattern, ascii_upper(subject)));  // names have no case
  if (matches && pattern->is_wildcard) {
    // Wildcards are for names, and never leave the domain the pattern's last two (literal) labels name.
    EGRESSD_CHECK(!policy::IpAddress::parse(subject).has_value());
    const std::size_t n = pattern->labels.size();
    EGRESSD_CHECK(n >= 3);
    const std::string suffix = "." + pattern->labels[n - 2] + "." + pattern->labels[n - 1];
    EGRESSD_CHECK(ascii_lower(subject).ends_with(suffix));
  }
}

// An independent glob matcher to check the matcher's dynamic programming against: memoized recursion
// where `**` matches any run and `*` any run without a separator (none for value globs).
class ReferenceGlob {
 public:
  ReferenceGlob(std::string_view glob, std::string_view text, bool slash_separates)
      : glob_(glob),
        text_(text),
        slash_separates_(slash_separates),
        memo_((glob.size() + 1) * (text.size() + 1), 0) {}
  bool matches() { return at(0, 0); }

 private:
  bool at(std::size_t i, std::size_t j) {
    char& memo = memo_[i * (text_.size() + 1) + j];
    if (memo == 0) memo = compute(i, j) ? 1 : 2;
    return memo == 1;
  }
  bool compute(std::size_t i, std::size_t j) {
    if (i == glob_.size()) return j == text_.size();
    if (glob_[i] != '*') return j < text_.size() && glob_[i] == text_[j] && at(i + 1, j + 1);
    const bool crosses = i + 1 < glob_.size() && glob_[i + 1] == '*';
    const std::size_t after = i + (crosses ? 2 : 1);
    for (std::size_t k = j;; ++k) {
      if (at(after, k)) return true;
      if (k == text_.size() || (!crosses && slash_separates_ && text_[k] == '/')) return false;
    }
  }
  std::string_view glob_;
  std::string_view text_;
  bool slash_separates_;
  std::vector<char> memo_;  // 0 unknown, 1 matches, 2 does not
};

void check_globs(std::string_view glob, std::string_view subject) {
  const bool path = policy::path_glob_matches(glob, subject);
  const bool value = policy::value_glob_matches(glob, subject);
  if (path) EGRESSD_CHECK(value);                     // '*' in a value glob crosses '/' too
  if (glob.size() <= 512 && subject.size() <= 512) {  // the reference recurses once per character
    EGRESSD_CHECK(path == ReferenceGlob(glob, subject, true).matches());
    EGRESSD_CHECK(value == ReferenceGlob(glob, subject, false).matches());
  }
  EGRESSD_CHECK(policy::path_glob_matches("**", subject));
  EGRESSD_CHECK(policy::value_glob_matches("*", subject));
  std::string literal;  // the glob with every '*' matching nothing
  for (char c : glob) {
    if (c != '*') literal += c;
  }
  EGRESSD_CHECK(policy::path_glob_matches(glob, literal));
  EGRESSD_CHECK(policy::value_glob_matches(glob, literal));
  if (literal.size() == glob.size()) EGRESSD_CHECK(path == (glob == subject));
}

int upper_hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_unreserved(int c) {  // RFC 3986 §2.3
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

void check_normalized_path(std::string_view raw) {
  auto path = policy::normalize_request_path(raw);
  if (!path) {
    EGRESSD_CHECK(!path.error().empty());
    return;
  }
  // What the policy sees has nothing an origin server could read another way.
  EGRESSD_CHECK(path->starts_with('/'));
  EGRESSD_CHECK(path->find("//") == std::string::npos);
  for (std::size_t i = 0; i < path->size(); ++i) {
    const auto c = static_cast<unsigned char>((*path)[i]);
    EGRESSD_CHECK(c > 0x20 && c < 0x7f && c != '#' && c != '?' && c != '\\');
    if (c == '%') {  // a kept escape: upper case; never '/', a backslash, a control or an unreserved byte
      EGRESSD_CHECK(i + 2 < path->size());
      const int high = upper_hex_value((*path)[i + 1]);
      const int low = upper_hex_value((*path)[i + 2]);
      EGRESSD_CHECK(high >= 0 && low >= 0);
      const int decoded = high * 16 + low;
      EGRESSD_CHECK(decoded >= 0x20 && decoded != 0x7f && decoded != '/' && decoded != '\\');
      EGRESSD_CHECK(!is_unreserved(decoded));
    }
  }
  std::size_t start = 1;
  while (start <= path->size()) {
    const std::size_t slash = std::min(path->find('/', start), path->size());
    const std::string_view segment = std::string_view(*path).substr(start, slash - start);
    const std::string_view name = segment.substr(0, segment.find(';'));
    EGRESSD_CHECK(name != "." && name != "..");
    start = slash + 1;
  }
  auto again = policy::normalize_request_path(*path);  // idempotent: normalized is normal
  EGRESSD_CHECK(again.has_value() && *again == *path);
  EGRESSD_CHECK(policy::path_glob_matches("/**", *path));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find_first_of(std::string_view("\0\n", 2));
  const std::string_view pattern = input.substr(0, split);
  const std::string_view subject = split == std::string_view::npos ? input : input.substr(split + 1);
  check_host_pattern(pattern, subject);
  check_globs(pattern, subject);
  check_normalized_path(subject);
  return 0;
}
