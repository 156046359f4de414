// PolicyReload on a real loop. The policy "file" is a FIFO, so that a load stays in flight (its worker
// blocked opening it) until the test writes a version into it: what arrives during a load is then
// certain, not a matter of timing. Every test ends with uv_loop_close() == 0.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "policy/loader.h"
#include "proxy/policy_reload.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

using namespace egressd;
using namespace std::chrono_literals;

namespace {

// A valid policy with `rules` rules: each version of the file is told apart by its rule count.
std::string policy_with(int rules) {
  std::string yaml = "version: 1\nnetwork_policies:\n";
  for (int i = 0; i < rules; ++i) {
    yaml += "  r" + std::to_string(i) + ":\n    endpoints: [{ host: h" + std::to_string(i) +
            ".example.com, port: 443 }]\n    binaries: [{ path: /usr/bin/allowed }]\n";
  }
  return yaml;
}

// Records what PolicyReload says, on the loop thread; `loads_finished` is read by the writer thread.
struct Recorder final : proxy::PolicyLoadListener {
  void on_policy_load_started() override {
    CHECK(std::this_thread::get_id() == loop_thread);
    ++started;
  }
  void on_policy_loaded(Result<std::shared_ptr<const policy::Policy>, policy::LoadErrors> loaded,
                        double load_seconds) override {
    CHECK(std::this_thread::get_id() == loop_thread);
    CHECK(load_seconds >= 0);
    rules.push_back(loaded ? static_cast<int>((*loaded)->rules.size()) : -1);
    ++loads_finished;
  }

  std::thread::id loop_thread = std::this_thread::get_id();
  int started = 0;
  std::vector<int> rules;  // per finished load: its rule count, -1 when it failed
  std::atomic<int> loads_finished{0};
};

// Writes `text` into the FIFO once a reader has it open, retrying until `give_up` is set; true if
// written. O_NONBLOCK: the open fails (ENXIO) rather than waits while no load is reading.
bool feed(const std::string& fifo, const std::string& text, const std::atomic<bool>& give_up) {
  while (!give_up) {
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      std::this_thread::sleep_for(1ms);  // polling for the reader's open, which has no event of its own
      continue;
    }
    ::fcntl(fd, F_SETFL, 0);  // blocking writes: the reader drains the pipe
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return written;
  }
  return false;
}

struct Fixture {
  Fixture() {
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    REQUIRE(uv_loop_init(&loop) == 0);
  }
  test::TempDir dir;
  std::string fifo = dir.file("policy.yaml");
  uv_loop_t loop{};
  Recorder recorder;
};

}  // namespace

TEST_CASE("a reload loads the file on the thread pool and hands the policy back on the loop thread" *
          doctest::timeout(30)) {
  test::TempDir dir;
  const std::string path = dir.file("policy.yaml");
  test::write_file(path, policy_with(3));
  uv_loop_t loop{};
  REQUIRE(uv_loop_init(&loop) == 0);
  Recorder recorder;
  {
    proxy::PolicyReload reload(&loop, path, recorder);
    reload.request();
    CHECK(reload.loading());
    CHECK(recorder.started == 1);
    CHECK(recorder.rules.empty());  // nothing is loaded on the calling thread
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_FALSE(reload.loading());
  }
  CHECK(recorder.started == 1);
  CHECK(recorder.rules == std::vector<int>{3});
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("requests during a load are coalesced into exactly one more load, which reads the last version" *
          doctest::timeout(30)) {
  Fixture f;
  std::atomic<bool> give_up{false};
  {
    proxy::PolicyReload reload(&f.loop, f.fifo, f.recorder);
    reload.request();  // in flight until the writer feeds the FIFO
    reload.request();
    reload.request();
    reload.request();
    CHECK(f.recorder.started == 1);
    std::thread writer([&] {
      CHECK(feed(f.fifo, policy_with(1), give_up));
      // The next version only once the first load has its file: the second load must open it anew.
      CHECK(test::wait_for([&] { return f.recorder.loads_finished.load() == 1; }, 10s));
      CHECK(feed(f.fifo, policy_with(2), give_up));
    });
    uv_run(&f.loop, UV_RUN_DEFAULT);  // returns when no load is in flight or pending
    give_up = true;
    writer.join();
  }
  CHECK(f.recorder.started == 2);
  CHECK(f.recorder.rules == std::vector<int>{1, 2});
  CHECK(uv_loop_close(&f.loop) == 0);
}

TEST_CASE("stop() during a load drops its result, starts nothing more, and the loop still closes" *
          doctest::timeout(30)) {
  Fixture f;
  std::atomic<bool> give_up{false};
  proxy::PolicyReload reload(&f.loop, f.fifo, f.recorder);
  reload.request();
  reload.request();  // pending: must not start after stop()
  reload.stop();
  CHECK_FALSE(reload.loading());
  reload.request();  // ignored once stopped
  // If a worker already picked the job up it is blocked opening the FIFO: let it finish.
  std::thread writer([&] { (void)feed(f.fifo, policy_with(1), give_up); });
  uv_run(&f.loop, UV_RUN_DEFAULT);  // until libuv has freed the job (done or cancelled)
  give_up = true;
  writer.join();
  CHECK(f.recorder.started == 1);
  CHECK(f.recorder.rules.empty());
  CHECK(uv_loop_close(&f.loop) == 0);
}

TEST_CASE("a PolicyReload destroyed during a load leaves the job to libuv, which drops its result" *
          doctest::timeout(30)) {
  Fixture f;
  std::atomic<bool> give_up{false};
  {
    proxy::PolicyReload reload(&f.loop, f.fifo, f.recorder);
    reload.request();
  }
  std::thread writer([&] { (void)feed(f.fifo, policy_with(1), give_up); });
  uv_run(&f.loop, UV_RUN_DEFAULT);
  give_up = true;
  writer.join();
  CHECK(f.recorder.started == 1);
  CHECK(f.recorder.rules.empty());
  CHECK(uv_loop_close(&f.loop) == 0);
}

TEST_CASE("a file that does not load is answered as a failed load, and the next request loads again" *
          doctest::timeout(30)) {
  test::TempDir dir;
  const std::string path = dir.file("policy.yaml");
  test::write_file(path, "version: 1\nnetwork_policies: [not, a, map]\n");
  uv_loop_t loop{};
  REQUIRE(uv_loop_init(&loop) == 0);
  Recorder recorder;
  {
    proxy::PolicyReload reload(&loop, path, recorder);
    reload.request();
    uv_run(&loop, UV_RUN_DEFAULT);
    test::write_file(path, policy_with(2));
    reload.request();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK(recorder.started == 2);
  CHECK(recorder.rules == std::vector<int>{-1, 2});
  CHECK(uv_loop_close(&loop) == 0);
}
