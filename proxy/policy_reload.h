// PolicyReload: reads, parses, validates and indexes the policy file on libuv's thread pool, so that a
// large policy never stalls the event loop (issue #6, T8); the result comes back to the loop, where the
// listener installs it. One load at a time: requests made while one is in flight are coalesced into
// exactly one more load, started once it finishes, so the last edit always wins. Loop thread only.
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "common/result.h"
#include "policy/loader.h"
#include "policy/policy.h"

namespace egressd::proxy {

// Told, on the loop thread, when each load starts and what it gave. Every start is followed by exactly
// one on_policy_loaded, unless the PolicyReload is stopped (or destroyed) in between.
class PolicyLoadListener {
 public:
  virtual void on_policy_load_started() = 0;
  // `load_seconds`: reading, parsing, validating and indexing the file, on the worker thread.
  virtual void on_policy_loaded(Result<std::shared_ptr<const policy::Policy>, policy::LoadErrors> loaded,
                                double load_seconds) = 0;

 protected:
  virtual ~PolicyLoadListener() = default;  // not deleted through this interface
};

class PolicyReload {
 public:
  // `path`: the policy file (each job loads its own copy of the name). `loop` and `listener` are not
  // owned and outlive this object.
  PolicyReload(uv_loop_t* loop, std::string path, PolicyLoadListener& listener);
  PolicyReload(const PolicyReload&) = delete;
  PolicyReload& operator=(const PolicyReload&) = delete;
  ~PolicyReload() { stop(); }

  // Starts a load now, or, while one is in flight, asks for one more after it. After stop(): nothing.
  void request();
  // No load starts from now on. A load still in flight is cancelled if no worker has picked it up yet;
  // otherwise it runs to its end and its result is dropped. Either way libuv frees the job, so the loop
  // keeps running until then.
  void stop();
  bool loading() const { return in_flight_ != nullptr; }

 private:
  struct Job;
  static void uv_on_work(uv_work_t* req) noexcept;
  static void uv_on_loaded(uv_work_t* req, int status) noexcept;
  void start();
  void on_loaded(Job& job, int status);

  uv_loop_t* loop_;
  std::string path_;
  PolicyLoadListener& listener_;
  Job* in_flight_ = nullptr;      // owned by libuv from uv_queue_work until uv_on_loaded, which frees it
  bool requested_again_ = false;  // a request arrived while in_flight_ was loading
  bool stopped_ = false;
};

}  // namespace egressd::proxy
