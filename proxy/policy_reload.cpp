#include "proxy/policy_reload.h"

#include <exception>
#include <optional>
#include <utility>

#include <fmt/format.h>

namespace egressd::proxy {

namespace {
using Loaded = Result<std::shared_ptr<const policy::Policy>, policy::LoadErrors>;
}  // namespace

// One load on the thread pool. The worker reads only `path` and writes only `loaded` and `load_seconds`;
// `owner` belongs to the loop thread (stop() clears it while the worker may still be running).
struct PolicyReload::Job {
  uv_work_t req{};
  PolicyReload* owner = nullptr;  // null once the owner stopped or died: the result is then dropped
  std::string path;
  std::optional<Loaded> loaded;  // empty if the worker could not even build an error (out of memory)
  double load_seconds = 0;
};

PolicyReload::PolicyReload(uv_loop_t* loop, std::string path, PolicyLoadListener& listener)
    : loop_(loop), path_(std::move(path)), listener_(listener) {}

void PolicyReload::request() {
  if (stopped_) return;
  if (in_flight_ != nullptr) {
    // The file may have changed after the worker read it: load once more when it is done, however many
    // requests arrive meanwhile.
    requested_again_ = true;
    return;
  }
  start();
}

void PolicyReload::start() {
  auto job = std::make_unique<Job>();
  job->owner = this;
  job->path = path_;
  job->req.data = job.get();
  const int rc = uv_queue_work(loop_, &job->req, &PolicyReload::uv_on_work, &PolicyReload::uv_on_loaded);
  if (rc == 0) in_flight_ = job.release();
  listener_.on_policy_load_started();
  if (rc != 0) {
    // Only an invalid argument fails here; answer the reload as rejected rather than leave it open.
    listener_.on_policy_loaded(
        unexpected(policy::LoadErrors{
            {{path_, 0, 0},
             fmt::format("cannot queue the policy load: uv_queue_work: {}", uv_err_name(rc))}}),
        0);
  }
}

void PolicyReload::stop() {
  stopped_ = true;
  requested_again_ = false;
  if (in_flight_ == nullptr) return;
  in_flight_->owner = nullptr;
  // Succeeds only while no worker has picked the job up; uv_on_loaded then runs with UV_ECANCELED.
  (void)uv_cancel(reinterpret_cast<uv_req_t*>(&in_flight_->req));
  in_flight_ = nullptr;
}

void PolicyReload::uv_on_work(uv_work_t* req) noexcept {
  auto* job = static_cast<Job*>(req->data);
  const uint64_t started_ns = uv_hrtime();
  try {
    // load_policy_file() uses nothing but its arguments and the file: no state shared with the loop.
    job->loaded.emplace(policy::load_policy_file(job->path));
  } catch (const std::exception&) {  // bad_alloc moving the result; on_loaded says so
    job->loaded.reset();
  }
  job->load_seconds = static_cast<double>(uv_hrtime() - started_ns) / 1e9;
}

void PolicyReload::uv_on_loaded(uv_work_t* req, int status) noexcept {
  std::unique_ptr<Job> job(static_cast<Job*>(req->data));
  PolicyReload* self = job->owner;
  if (self == nullptr) return;  // stopped while loading: nobody is waiting for this result
  self->on_loaded(*job, status);
}

void PolicyReload::on_loaded(Job& job, int status) {
  in_flight_ = nullptr;
  const bool again = std::exchange(requested_again_, false);
  if (status != 0 || !job.loaded) {
    const std::string why = status != 0 ? fmt::format("the load did not run: {}", uv_err_name(status))
                                        : std::string("cannot load: out of memory");
    job.loaded.emplace(unexpected(policy::LoadErrors{{{path_, 0, 0}, why}}));
  }
  listener_.on_policy_loaded(std::move(*job.loaded), job.load_seconds);
  if (again) request();  // the listener may have stopped us meanwhile: request() checks
}

}  // namespace egressd::proxy
