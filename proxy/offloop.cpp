#include "proxy/offloop.h"

#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "proxy/server.h"

namespace egressd::proxy {
namespace {

struct DigestJob {
  uv_work_t req{};
  Server* server = nullptr;
  SessionId id = 0;
  pid_t pid = 0;
  ExeDigests* digests = nullptr;  // owned by main, outlives the loop
  std::optional<Result<ExeDigest, std::string>> result;
};

void uv_on_digest_work(uv_work_t* req) noexcept {
  auto* job = static_cast<DigestJob*>(req->data);
  try {
    job->result.emplace(job->digests->digest(job->pid));
  } catch (const std::exception& e) {
    job->result.emplace(unexpected(std::string("hashing failed: ") + e.what()));
  }
}

void uv_on_after_digest(uv_work_t* req, int status) noexcept {
  std::unique_ptr<DigestJob> job(static_cast<DigestJob*>(req->data));
  if (status == UV_ECANCELED || !job->result) return;
  job->server->on_digest(job->id, std::move(*job->result));
}

}  // namespace

int queue_digest(uv_loop_t* loop, Server& server, SessionId id, pid_t pid, ExeDigests& digests) {
  auto job = std::make_unique<DigestJob>();
  job->server = &server;
  job->id = id;
  job->pid = pid;
  job->digests = &digests;
  job->req.data = job.get();
  const int rc = uv_queue_work(loop, &job->req, uv_on_digest_work, uv_on_after_digest);
  if (rc == 0) job.release();
  return rc;
}

Identifier one_at_a_time(std::function<IdentifyAnswer(const procid::TcpTuple&)> identify) {
  return [identify = std::move(identify)](std::span<const procid::TcpTuple> tuples) {
    std::vector<IdentifyAnswer> answers;
    answers.reserve(tuples.size());
    for (const procid::TcpTuple& tuple : tuples) answers.push_back(identify(tuple));
    return answers;
  };
}

struct IdentifyQueue::Pass {
  uv_work_t req{};
  IdentifyQueue* queue = nullptr;              // null once the queue is gone
  std::shared_ptr<const Identifier> identify;  // shared: the pass may outlive the queue
  std::vector<SessionId> ids;
  std::vector<procid::TcpTuple> tuples;
  std::vector<IdentifyAnswer> answers;
};

IdentifyQueue::IdentifyQueue(uv_loop_t* loop, Server& server, Identifier identify)
    : loop_(loop), server_(server), identify_(std::make_shared<const Identifier>(std::move(identify))) {}

IdentifyQueue::~IdentifyQueue() {
  // The loop is normally drained first; if not, the running pass finishes unheard.
  for (Pass* pass : running_) pass->queue = nullptr;
}

int IdentifyQueue::submit(SessionId id, const procid::TcpTuple& tuple) {
  waiting_.emplace_back(id, tuple);
  if (running_.size() >= kPasses) return 0;  // answered by the next pass to start
  const int rc = start_pass();
  if (rc != 0) waiting_.pop_back();  // nothing else waits here: a pass starts whenever one can
  return rc;
}

int IdentifyQueue::start_pass() {
  auto pass = std::make_unique<Pass>();
  pass->queue = this;
  pass->identify = identify_;
  pass->req.data = pass.get();
  for (auto& [id, tuple] : waiting_) {
    pass->ids.push_back(id);
    pass->tuples.push_back(tuple);
  }
  const int rc = uv_queue_work(loop_, &pass->req, uv_on_work, uv_on_after_work);
  if (rc != 0) return rc;
  waiting_.clear();
  running_.push_back(pass.release());  // freed in uv_on_after_work
  return 0;
}

void IdentifyQueue::uv_on_work(uv_work_t* req) noexcept {
  auto* pass = static_cast<Pass*>(req->data);
  try {
    pass->answers = (*pass->identify)(pass->tuples);
    if (pass->answers.size() == pass->tuples.size()) return;
    pass->answers.clear();
    throw std::logic_error("the identifier answered a different number of connections");
  } catch (const std::exception& e) {  // e.g. bad_alloc: still an answer, and still a denial
    pass->answers.assign(pass->tuples.size(),
                         unexpected(procid::LookupError{procid::LookupError::Stage::Process, 0, 0,
                                                        std::string("identification failed: ") + e.what()}));
  }
}

void IdentifyQueue::uv_on_after_work(uv_work_t* req, int status) noexcept {
  std::unique_ptr<Pass> pass(static_cast<Pass*>(req->data));
  if (pass->queue == nullptr) return;
  std::erase(pass->queue->running_, pass.get());
  if (status == UV_ECANCELED) return;  // the loop is shutting down
  pass->queue->on_pass_done(*pass);
}

void IdentifyQueue::on_pass_done(Pass& pass) {
  server_.metrics().identification_pass(pass.ids.size());
  // The next pass starts before the answers go out: a session told its answer may close, and new
  // connections keep arriving meanwhile.
  if (!waiting_.empty()) {
    if (const int rc = start_pass(); rc != 0) {
      const procid::LookupError error{procid::LookupError::Stage::SocketLookup, 0, 0,
                                      std::string("identification could not be queued: ") + uv_strerror(rc)};
      for (auto& [id, tuple] : std::exchange(waiting_, {})) server_.on_identified(id, unexpected(error));
    }
  }
  for (size_t i = 0; i < pass.ids.size(); ++i) server_.on_identified(pass.ids[i], std::move(pass.answers[i]));
}

}  // namespace egressd::proxy
