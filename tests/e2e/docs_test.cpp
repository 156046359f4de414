// The documentation against the built egressd: the man page renders cleanly and names every subcommand
// and run flag `egressd help` lists; the README's debugging loop runs as written against a local origin;
// every `egressd check` and `egressd explain` example in README.md, docs/*.md and the man page runs with
// the files it names; docs/policy.md names every key the loader accepts (read from the loader's own
// "accepted keys" errors); and every test the threat model cites exists.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/json.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

const std::string kSourceDir = EGRESSD_SOURCE_DIR;

std::string source_text(const std::string& relative) {
  return read_file(kSourceDir + "/" + relative);
}

bool has(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

std::string collapse_spaces(const std::string& text) {
  return std::regex_replace(text, std::regex(R"(\s+)"), " ");
}

// README.md and the reference pages in docs/ (docs/BENCHMARKS.md holds measurements, not commands).
std::vector<std::string> markdown_docs() {
  std::vector<std::string> files{"README.md"};
  for (const auto& entry : std::filesystem::directory_iterator(kSourceDir + "/docs")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".md" && name != "BENCHMARKS.md") files.push_back("docs/" + name);
  }
  std::sort(files.begin() + 1, files.end());
  return files;
}

// The lines inside ``` fences, a trailing backslash joining a line to the next; `skip_marked` leaves
// out the block after a "<!-- debugging-loop" marker (its own test runs it).
std::vector<std::string> fenced_commands(const std::string& markdown) {
  std::vector<std::string> out;
  bool fenced = false;
  bool skipping = false;
  std::string pending;
  for (const std::string& line : lines_of(markdown)) {
    if (line.starts_with("<!-- debugging-loop")) skipping = true;
    if (line.starts_with("```")) {
      if (fenced && skipping) skipping = false;
      fenced = !fenced;
      continue;
    }
    if (!fenced || skipping) continue;
    if (line.ends_with("\\")) {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    out.push_back(pending + line);
    pending.clear();
  }
  return out;
}

// The man page's example lines (between .EX and .EE), unescaped.
std::vector<std::string> man_examples(const std::string& roff) {
  std::vector<std::string> out;
  bool in_example = false;
  std::string pending;
  for (std::string line : lines_of(roff)) {
    if (line == ".EX") in_example = true;
    if (line == ".EE") in_example = false;
    if (!in_example || line.starts_with(".")) continue;
    line = std::regex_replace(line, std::regex(R"(\\-)"), "-");
    line = std::regex_replace(line, std::regex(R"(\\e)"), "\\");
    if (line.ends_with("\\")) {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    out.push_back(pending + line);
    pending.clear();
  }
  return out;
}

// `egressd help`: the subcommands (lines "  egressd NAME") and the run flags (after "run options").
struct Usage {
  std::set<std::string> subcommands;
  std::set<std::string> run_flags;
};
Usage usage_of_binary() {
  const RunResult help = run({egressd_binary(), "help"});
  REQUIRE(help.exit_code == 0);
  Usage usage;
  bool in_run_options = false;
  for (const std::string& line : lines_of(help.out)) {
    if (line.starts_with("run options")) in_run_options = true;
    if (line.starts_with("  egressd ")) usage.subcommands.insert(words_of(line).at(1));
    if (!in_run_options) continue;
    for (const std::string& word : words_of(line)) {
      if (std::regex_match(word, std::regex("--[a-z][a-z-]*"))) usage.run_flags.insert(word);
    }
  }
  return usage;
}

TEST_CASE("the man page renders without warnings and names every subcommand and run flag egressd help lists" *
          doctest::timeout(60)) {
  const std::string page = kSourceDir + "/docs/egressd.1";
  // -ww: every warning; -rHY=0 and a wide line keep flags from being hyphenated across lines.
  const RunResult rendered = run({"groff", "-man", "-Tascii", "-ww", "-P-cbou", "-rHY=0", "-rLL=200n", page});
  INFO(rendered.err);
  REQUIRE(rendered.exit_code == 0);
  CHECK(rendered.err.empty());

  const Usage usage = usage_of_binary();
  REQUIRE(usage.subcommands.size() >= 6);  // run, check, explain, suggest, ca, version
  REQUIRE(usage.run_flags.size() >= 20);
  for (const std::string& subcommand : usage.subcommands) {
    CHECK_MESSAGE(has(rendered.out, "egressd " + subcommand), "the man page does not name " << subcommand);
  }
  for (const std::string& flag : usage.run_flags) {
    CHECK_MESSAGE(std::regex_search(rendered.out, std::regex("(^|[^-a-z])" + flag + "([^-a-z]|$)")),
                  "the man page does not name " << flag);
  }
  for (std::string_view section :
       {"SYNOPSIS", "RUN OPTIONS", "FILES", "SIGNALS", "EXIT STATUS", "EXAMPLES"}) {
    CAPTURE(section);
    CHECK(has(rendered.out, "\n" + std::string(section) + "\n"));
  }
}

// The README's debugging-loop block, line by line. Lines that start processes in the background are
// played by the test's own LocalOrigin and Egressd (same flags, plus the test's ephemeral ports); every
// other line runs as written in egressd's directory, which holds policy.yaml and deny.log under the
// names the README uses. Ports and the demo directory are the only substitutions.
TEST_CASE("the README's debugging loop runs as written: 403, deny line, explain, suggest, reload, then 200" *
          doctest::timeout(120)) {
  const std::string readme = source_text("README.md");
  const size_t begin = readme.find("<!-- debugging-loop");
  REQUIRE(begin != std::string::npos);
  const size_t open = readme.find("```sh\n", begin);
  const size_t close = readme.find("\n```\n", open);
  REQUIRE(open != std::string::npos);
  REQUIRE(close != std::string::npos);
  const std::vector<std::string> block = lines_of(readme.substr(open + 6, close - open - 6));

  // The policy the README writes with its here-document, with curl as this machine names it.
  std::string policy;
  auto line = block.begin();
  while (line != block.end() && *line != "cat > policy.yaml <<'EOF'") ++line;
  REQUIRE(line != block.end());
  for (++line; line != block.end() && *line != "EOF"; ++line) policy += *line + "\n";
  REQUIRE(line != block.end());
  policy = std::regex_replace(policy, std::regex("/usr/bin/curl"), curl());

  const LocalOrigin origin = LocalOrigin::http();
  REQUIRE(std::find(block.begin(), block.end(), "python3 -m http.server 8080 --bind 127.0.0.1 &") !=
          block.end());
  REQUIRE(std::find(block.begin(), block.end(),
                    "egressd run --listen 127.0.0.1:3128 --policy policy.yaml --deny-log deny.log &") !=
          block.end());
  Egressd egressd(policy);
  const std::string dir = egressd.dir().path();

  std::vector<std::pair<std::string, RunResult>> results;  // each command line as written, what it did
  bool in_heredoc = false;
  for (const std::string& text : block) {
    if (in_heredoc) {
      in_heredoc = text != "EOF";
      continue;
    }
    if (text.starts_with("cat > policy.yaml <<")) {
      in_heredoc = true;
      continue;
    }
    if (text.ends_with("&")) continue;  // the origin and egressd, started above
    if (text == "mkdir -p /tmp/egressd-demo" || text == "cd /tmp/egressd-demo") continue;  // egressd.dir()
    std::vector<std::string> argv;
    std::string redirect_to;
    const std::vector<std::string> words = words_of(text);
    for (size_t i = 0; i < words.size(); ++i) {
      if (words[i] == ">") {
        REQUIRE(i + 2 == words.size());
        redirect_to = words[i + 1];
        break;
      }
      std::string word =
          std::regex_replace(words[i], std::regex("127\\.0\\.0\\.1:3128"), egressd.host_port());
      word = std::regex_replace(word, std::regex("127\\.0\\.0\\.1:8080"), origin.host_port());
      if (word == "8080") word = std::to_string(origin.port());
      argv.push_back(word);
    }
    CAPTURE(text);
    REQUIRE_FALSE(argv.empty());
    if (argv[0] == "egressd") argv[0] = egressd_binary();
    REQUIRE((argv[0] == egressd_binary() || argv[0] == "curl" || argv[0] == "tail" || argv[0] == "mv"));
    const size_t reloads = egressd.stderr_count("policy reloaded: hash=");
    RunResult result = run(argv, RunOptions{.working_dir = dir});
    if (!redirect_to.empty()) write_file(dir + "/" + redirect_to, result.out);
    if (argv[0] == "mv") REQUIRE(egressd.wait_for_stderr_count("policy reloaded: hash=", reloads + 1, 10s));
    if (argv[0] == "curl" && results.empty()) REQUIRE(egressd.wait_for_deny_lines(1));
    results.emplace_back(text, std::move(result));
  }

  const auto find_result = [&results](std::string_view prefix, bool last = false) -> const RunResult& {
    const RunResult* found = nullptr;
    for (const auto& [text, result] : results) {
      if (text.starts_with(prefix)) {
        found = &result;
        if (!last) break;
      }
    }
    REQUIRE(found != nullptr);
    return *found;
  };
  const std::string reason =
      "endpoint 127.0.0.1:" + std::to_string(origin.port()) + " is not allowed by any policy";

  const RunResult& denied = find_result("curl ");
  INFO("first curl: " << denied.out << denied.err);
  const Json body = Json::parse(denied.out);
  CHECK(body["error"].str() == "policy_denied");
  CHECK(body["reason"].str() == reason);

  const RunResult& tail = find_result("tail ");
  const Json logged = Json::parse(tail.out);
  CHECK(logged["event"].str() == "deny");
  CHECK(logged["binary"].str() == curl());
  CHECK(logged["reason"].str() == reason);
  CHECK(has(readme, "endpoint 127.0.0.1:8080 is not allowed by any policy"));

  const RunResult& explained = find_result("egressd explain ");
  INFO("explain: " << explained.out << explained.err);
  CHECK(explained.exit_code == 1);
  CHECK(explained.out.starts_with("DENY "));
  CHECK(has(explained.out, reason));

  const RunResult& suggested = find_result("egressd suggest ");
  INFO("suggest: " << suggested.out << suggested.err);
  CHECK(suggested.exit_code == 0);
  CHECK(has(suggested.out, "- { host: \"127.0.0.1\", port: " + std::to_string(origin.port()) + " }"));
  CHECK(has(readme, "`- { host: \"127.0.0.1\", port: 8080 }`"));

  const RunResult& checked = find_result("egressd check ");
  INFO("check: " << checked.out << checked.err);
  CHECK(checked.exit_code == 0);

  const RunResult& passed = find_result("curl ", true);
  INFO("second curl: " << passed.out << passed.err);
  CHECK(passed.exit_code == 0);
  CHECK(passed.out == "not found\n");  // the origin's own answer for "/" (python's http.server lists files)
  CHECK(egressd.stderr_count("DENY ") == 1);
}

// Each `egressd check` / `egressd explain` line in a code block (synopses with FILE or [...] aside).
// /etc/egressd/policy.yaml is what cmake --install copies policies/example.yaml to (systemd_install_test).
struct Example {
  std::string file;
  std::string text;
};
std::vector<Example> command_examples() {
  std::vector<Example> examples;
  const auto add = [&examples](const std::string& file, const std::string& text) {
    const std::string trimmed = std::regex_replace(text, std::regex(R"(^\s+)"), "");
    if (!trimmed.starts_with("egressd check ") && !trimmed.starts_with("egressd explain ")) return;
    if (has(trimmed, "FILE") || has(trimmed, "[")) return;
    // A file under /tmp or /var/log is one an earlier step of the same example writes (suggest's output,
    // a deny log): not something to run on its own.
    if (has(trimmed, " /tmp/") || has(trimmed, " /var/log/")) return;
    examples.push_back({file, trimmed});
  };
  for (const std::string& file : markdown_docs()) {
    for (const std::string& text : fenced_commands(source_text(file))) add(file, text);
  }
  for (const std::string& text : man_examples(source_text("docs/egressd.1"))) add("docs/egressd.1", text);
  return examples;
}

TEST_CASE("every egressd check and explain example in README.md, docs/ and the man page runs as written" *
          doctest::timeout(120)) {
  const std::vector<Example> examples = command_examples();
  REQUIRE(examples.size() >= 6);
  for (const Example& example : examples) {
    CAPTURE(example.file);
    CAPTURE(example.text);
    // An explain example in markdown says what it shows: a trailing "# ALLOW" or "# DENY".
    std::string expected;
    std::string command = example.text;
    if (const size_t hash = command.find(" #"); hash != std::string::npos) {
      expected = words_of(command.substr(hash + 2)).at(0);
      command = command.substr(0, hash);
    }
    // A line that goes on with && (check, then copy) is checked up to the &&.
    if (const size_t and_then = command.find(" && "); and_then != std::string::npos)
      command = command.substr(0, and_then);
    std::vector<std::string> argv = words_of(command);
    argv[0] = egressd_binary();
    for (std::string& word : argv) {
      if (word == "/etc/egressd/policy.yaml") word = "policies/example.yaml";
      if (word.starts_with("/") || word.find('/') == std::string::npos || word.starts_with("--")) continue;
      CHECK_MESSAGE(file_exists(kSourceDir + "/" + word), "names a file the repository does not have");
    }
    const RunResult result = run(argv, RunOptions{.working_dir = kSourceDir});
    INFO(result.out << result.err);
    if (argv[1] == "check") {
      CHECK(result.exit_code == 0);
      CHECK(has(result.out, ": ok ("));
    } else if (example.file.ends_with(".md")) {
      REQUIRE_MESSAGE((expected == "ALLOW" || expected == "DENY"),
                      "explain examples end in # ALLOW or # DENY");
      CHECK(result.exit_code == (expected == "ALLOW" ? 0 : 1));
      CHECK(result.out.starts_with(expected + " "));
    } else {
      CHECK((result.exit_code == 0 || result.exit_code == 1));
      CHECK((result.out.starts_with("ALLOW ") || result.out.starts_with("DENY ")));
    }
  }
}

// One policy per place the loader takes keys or a fixed set of values, each with one thing it does not
// accept: the error lists what it does accept ("accepted keys: a, b" or "accepted: a, b").
TEST_CASE("docs/policy.md names every key and value the policy loader accepts, as its errors list them" *
          doctest::timeout(60)) {
  const std::string rule_head = "version: 1\nnetwork_policies:\n  r:\n";
  const std::string binaries = "    binaries: [{ path: /usr/bin/curl }]\n";
  const auto endpoint = [&](const std::string& fields) {
    return rule_head + "    endpoints: [{ host: a.example.com, port: 443" + fields + " }]\n" + binaries;
  };
  const std::vector<std::string> policies = {
      "version: 1\nzz_unknown: 1\nnetwork_policies: {}\n",
      "version: 1\nmode: zz_unknown\nnetwork_policies: {}\n",
      rule_head + "    zz_unknown: 1\n    endpoints: [{ host: a.example.com, port: 443 }]\n" + binaries,
      endpoint(", zz_unknown: 1"),
      endpoint(", protocol: zz_unknown"),
      endpoint(", tls: zz_unknown"),
      endpoint(", enforcement: zz_unknown"),
      endpoint(", protocol: rest, access: zz_unknown"),
      endpoint(", protocol: rest, rules: [{ allow: { method: GET }, zz_unknown: 1 }]"),
      endpoint(", protocol: rest, rules: [{ allow: { method: GET, zz_unknown: 1 } }]"),
      endpoint(", protocol: rest, rules: [{ allow: { query: { q: { zz_unknown: 1 } } } }]"),
      rule_head + "    endpoints: [{ host: a.example.com, port: 443 }]\n" +
          "    binaries: [{ path: /usr/bin/curl, zz_unknown: 1 }]\n",
  };
  const std::string reference = source_text("docs/policy.md");
  const TempDir dir;
  std::set<std::string> accepted;
  for (const std::string& yaml : policies) {
    CAPTURE(yaml);
    write_file(dir.file("policy.yaml"), yaml);
    const RunResult result = run({egressd_binary(), "check", dir.file("policy.yaml")});
    INFO(result.out << result.err);
    CHECK(result.exit_code == 1);
    std::smatch match;
    const std::string output = result.out + result.err;
    REQUIRE(std::regex_search(output, match, std::regex("accepted(?: keys)?: ([a-z0-9_, -]+)")));
    std::string list = match[1].str();
    for (size_t start = 0; start < list.size();) {
      const size_t comma = std::min(list.find(", ", start), list.size());
      accepted.insert(list.substr(start, comma - start));
      start = comma + 2;
    }
  }
  REQUIRE(accepted.size() >= 40);
  for (const std::string& key : accepted) {
    CAPTURE(key);
    CHECK(has(reference, "`" + key + "`"));
  }
}

TEST_CASE("every test docs/threat-model.md cites exists in tests/" * doctest::timeout(60)) {
  std::string tests;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(kSourceDir + "/tests")) {
    if (entry.path().extension() == ".cpp") tests += read_file(entry.path().string());
  }
  // Names may be split across string literals in the source: compare without the quotes between them.
  tests = collapse_spaces(std::regex_replace(tests, std::regex("\"\\s*\""), ""));
  const std::string model = collapse_spaces(source_text("docs/threat-model.md"));
  const std::regex citation("`(e2e|unit/[a-z]+): ([^`]+)`");
  size_t cited = 0;
  for (auto it = std::sregex_iterator(model.begin(), model.end(), citation); it != std::sregex_iterator();
       ++it) {
    std::string name = (*it)[2].str();
    if (name.ends_with("...")) name = name.substr(0, name.size() - 3);
    CAPTURE(name);
    CHECK(has(tests, "\"" + name));
    ++cited;
  }
  CHECK(cited >= 20);
}

}  // namespace
}  // namespace egressd::test::e2e
