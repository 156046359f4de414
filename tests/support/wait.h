// Polling a condition until it holds or a deadline passes: the only way tests wait for something that
// has no event of its own (a log line, a file, a counter). Never a fixed sleep used as synchronisation.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace egressd::test {

// Calls `condition` every `interval` until it returns true (-> true) or `deadline` has passed since the
// call (-> false, after one last check). Runs on the calling thread.
inline bool wait_for(const std::function<bool()>& condition, std::chrono::milliseconds deadline,
                     std::chrono::milliseconds interval = std::chrono::milliseconds(10)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= until) return condition();
    std::this_thread::sleep_for(interval);
  }
}

}  // namespace egressd::test
