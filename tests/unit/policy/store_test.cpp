#include "policy/store.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "policy/matcher.h"
#include "tests/unit/policy/policy_fixtures.h"

namespace egressd::policy {
namespace {

const char* const kGitPolicy = R"(version: 1
network_policies:
  github: { endpoints: [{ host: github.com, port: 443 }], binaries: [{ path: /usr/bin/git }] }
)";

const char* const kCurlPolicy = R"(version: 1
network_policies:
  github: { endpoints: [{ host: github.com, port: 443 }], binaries: [{ path: /usr/bin/curl }] }
)";

// A store over `path`, which must load.
PolicyStore store_over(const std::string& path) {
  Result<std::shared_ptr<const Policy>, LoadErrors> initial = load_policy_file(path);
  if (!initial) FAIL(format_errors(initial.error()));
  return PolicyStore(path, *initial);
}

Verdict verdict_for(const Policy& policy, const std::string& exe) {
  const Caller caller{exe, {}};
  return decide(policy, {caller, "github.com", 443}).verdict;
}

TEST_CASE("reloading a changed file applies it and reports the new hash") {
  fixtures::ScratchDir dir;
  const std::string path = dir.write("policy.yaml", kGitPolicy);
  PolicyStore store = store_over(path);
  const std::string old_hash = store.current()->source_hash;
  dir.write("policy.yaml", kCurlPolicy);
  const ReloadResult result = store.reload();
  CHECK(result.kind == ReloadResult::Kind::Applied);
  CHECK(result.hash == store.current()->source_hash);
  CHECK(result.hash != old_hash);
  CHECK(result.errors.empty());
  CHECK(verdict_for(*store.current(), "/usr/bin/curl") == Verdict::Allow);
}

TEST_CASE("reloading an unchanged file reports unchanged and keeps the same snapshot") {
  fixtures::ScratchDir dir;
  const std::string path = dir.write("policy.yaml", kGitPolicy);
  PolicyStore store = store_over(path);
  const std::shared_ptr<const Policy> before = store.current();
  const ReloadResult result = store.reload();
  CHECK(result.kind == ReloadResult::Kind::Unchanged);
  CHECK(result.hash == before->source_hash);
  CHECK(store.current() == before);
}

TEST_CASE("a rejected reload keeps the old snapshot in force and returns the errors") {
  fixtures::ScratchDir dir;
  const std::string path = dir.write("policy.yaml", kGitPolicy);
  PolicyStore store = store_over(path);
  const std::shared_ptr<const Policy> before = store.current();
  dir.write("policy.yaml", "version: 1\nnetwork_policies:\n  github: { endpoints: [], binaries: [] }\n");
  const ReloadResult result = store.reload();
  CHECK(result.kind == ReloadResult::Kind::Rejected);
  CHECK(result.hash == before->source_hash);
  REQUIRE(result.errors.size() == 2);
  CHECK(result.errors[0].to_string() == path + ":3:24: a rule must list at least one endpoint");
  CHECK(store.current() == before);
  CHECK(verdict_for(*store.current(), "/usr/bin/git") == Verdict::Allow);
}

TEST_CASE("a reload of a deleted file is rejected and keeps the old snapshot") {
  fixtures::ScratchDir dir;
  const std::string path = dir.write("policy.yaml", kGitPolicy);
  PolicyStore store = store_over(path);
  const std::shared_ptr<const Policy> before = store.current();
  std::filesystem::remove(path);
  const ReloadResult result = store.reload();
  CHECK(result.kind == ReloadResult::Kind::Rejected);
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].to_string() == path + ": cannot read: No such file or directory");
  CHECK(store.current() == before);
}

TEST_CASE("a snapshot held across a reload stays valid and unchanged") {
  fixtures::ScratchDir dir;
  const std::string path = dir.write("policy.yaml", kGitPolicy);
  PolicyStore store = store_over(path);
  const std::shared_ptr<const Policy> held = store.current();
  dir.write("policy.yaml", kCurlPolicy);
  REQUIRE(store.reload().kind == ReloadResult::Kind::Applied);
  CHECK(store.current() != held);
  CHECK(verdict_for(*held, "/usr/bin/git") == Verdict::Allow);
  CHECK(verdict_for(*held, "/usr/bin/curl") == Verdict::Deny);
}

TEST_CASE("install follows the same rules as reload for an already loaded policy") {
  fixtures::ScratchDir dir;
  const std::string path = dir.write("policy.yaml", kGitPolicy);
  PolicyStore store = store_over(path);
  const std::shared_ptr<const Policy> first = store.current();

  CHECK(store.install(load_policy_text(kGitPolicy, path)).kind == ReloadResult::Kind::Unchanged);
  CHECK(store.current() == first);

  const ReloadResult rejected = store.install(load_policy_text("version: 2\n", path));
  CHECK(rejected.kind == ReloadResult::Kind::Rejected);
  CHECK(rejected.hash == first->source_hash);
  CHECK(store.current() == first);

  const ReloadResult applied = store.install(load_policy_text(kCurlPolicy, path));
  CHECK(applied.kind == ReloadResult::Kind::Applied);
  CHECK(applied.hash == store.current()->source_hash);
  CHECK(store.path() == path);
}

TEST_CASE("reload re-resolves a symlinked binary after the link is retargeted") {
  fixtures::ScratchDir dir;
  const std::string v1 = dir.write("tool-1", "");
  const std::string v2 = dir.write("tool-2", "");
  const std::string link = dir.symlink("tool", v1);
  const std::string path = dir.write("policy.yaml", fixtures::yaml_for_binaries("github.com", 443, {link}));
  PolicyStore store = store_over(path);
  CHECK(verdict_for(*store.current(), v1) == Verdict::Allow);
  CHECK(verdict_for(*store.current(), v2) == Verdict::Deny);

  dir.symlink("tool", v2);
  const ReloadResult result = store.reload();
  CHECK(result.kind == ReloadResult::Kind::Applied);  // same text, new target
  CHECK(verdict_for(*store.current(), v2) == Verdict::Allow);
  CHECK(verdict_for(*store.current(), v1) == Verdict::Deny);
  CHECK(verdict_for(*store.current(), link) == Verdict::Allow);
}

}  // namespace
}  // namespace egressd::policy
