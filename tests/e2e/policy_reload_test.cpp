// Hot reload: however the policy file changes (rename, in-place write, ConfigMap symlink swap, or a
// SIGHUP with watching off), the next request is decided by the new policy. Each case turns a deny of a
// curl copy into an allow, and the inotify cases do it within a second.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kReloaded = "policy reloaded: hash=";

// The hash in the last "policy reloaded: hash=<16 hex>" console line.
std::string last_reloaded_hash(const Egressd& egressd) {
  const std::string text = egressd.stderr_text();
  const size_t at = text.rfind(kReloaded);
  return at == std::string::npos ? std::string() : text.substr(at + kReloaded.size(), 16);
}

struct Flip {
  LocalOrigin origin = LocalOrigin::http();
  TempDir dir;
  std::string copy = copy_executable(curl(), dir, "curl");
  std::string only_curl = policy_allowing(curl(), "127.0.0.1", origin.port());
  std::string curl_and_copy = policy_allowing({{"test", {curl(), copy}, {{"127.0.0.1", origin.port()}}}});
};

// Changes the policy with `change` and checks the copy flips from 403 to 200, reporting how long the
// reload line and the first allowed request took after the change.
void check_flip(Egressd& egressd, Flip& flip, const std::function<void()>& change, bool must_be_fast) {
  REQUIRE(http_status(flip.copy, egressd, flip.origin.url("/hello")) == "403");
  const size_t reloads = egressd.stderr_count(kReloaded);
  const auto start = Clock::now();
  change();
  REQUIRE(egressd.wait_for_stderr_count(kReloaded, reloads + 1, 10s));
  const auto reloaded_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  CHECK(http_status(flip.copy, egressd, flip.origin.url("/hello")) == "200");
  const auto allowed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  CAPTURE(reloaded_ms);
  CAPTURE(allowed_ms);
  if (must_be_fast) {
    CHECK(reloaded_ms < 1000);
    CHECK(allowed_ms < 1000);
  }
  REQUIRE(egressd.wait_for_access_lines(1));
  CHECK(egressd.access_log_lines().back()["policy_hash"] == last_reloaded_hash(egressd));
}

TEST_CASE("a policy replaced by rename is picked up within a second" * doctest::timeout(60)) {
  Flip flip;
  Egressd egressd(flip.only_curl);
  INFO(egressd.diagnostics());
  check_flip(
      egressd, flip, [&] { egressd.write_policy_by_rename(flip.curl_and_copy); }, true);
}

TEST_CASE("a policy rewritten in place is picked up within a second" * doctest::timeout(60)) {
  Flip flip;
  Egressd egressd(flip.only_curl);
  INFO(egressd.diagnostics());
  check_flip(
      egressd, flip, [&] { egressd.write_policy_in_place(flip.curl_and_copy); }, true);
}

TEST_CASE("a ConfigMap-style ..data symlink swap is picked up within a second" * doctest::timeout(60)) {
  Flip flip;
  Egressd egressd(flip.only_curl, {}, PolicyLayout::ConfigMap);
  INFO(egressd.diagnostics());
  check_flip(
      egressd, flip, [&] { egressd.swap_policy_symlink(flip.curl_and_copy); }, true);
}

TEST_CASE("with --no-watch a changed policy applies only at SIGHUP" * doctest::timeout(60)) {
  Flip flip;
  Egressd egressd(flip.only_curl, {"--no-watch"});
  INFO(egressd.diagnostics());
  egressd.write_policy_by_rename(flip.curl_and_copy);
  // Not watching: the new file is not in force yet (a watcher would have applied it by now, see above).
  CHECK(http_status(flip.copy, egressd, flip.origin.url("/hello")) == "403");
  CHECK(egressd.stderr_count(kReloaded) == 0);
  check_flip(
      egressd, flip, [&] { egressd.sighup(); }, false);
}

}  // namespace
}  // namespace egressd::test::e2e
