#include "tests/support/wait.h"

#include <doctest/doctest.h>

#include <chrono>

namespace egressd::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("wait_for returns true as soon as the condition holds") {
  int calls = 0;
  CHECK(wait_for([&] { return ++calls == 3; }, 5000ms, 1ms));
  CHECK(calls == 3);
}

TEST_CASE("wait_for returns false once the deadline passes") {
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(wait_for([] { return false; }, 30ms));
  CHECK(std::chrono::steady_clock::now() - start >= 30ms);
}

}  // namespace
}  // namespace egressd::test
