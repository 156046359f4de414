#include "proxy/offloop.h"

#include <memory>
#include <new>
#include <optional>

#include "proxy/server.h"

namespace egressd::proxy {
namespace {

struct IdentifyJob {
  uv_work_t req{};
  Server* server = nullptr;  // outlives every job: the loop is drained before the server is destroyed
  SessionId id = 0;
  procid::TcpTuple tuple;
  const Identifier* identify = nullptr;  // owned by the server
  std::optional<Result<procid::PeerIdentity, procid::LookupError>> result;
};

void uv_on_work(uv_work_t* req) noexcept {
  auto* job = static_cast<IdentifyJob*>(req->data);
  try {
    job->result.emplace((*job->identify)(job->tuple));
  } catch (const std::exception& e) {  // e.g. bad_alloc: still an answer, and still a denial
    job->result.emplace(unexpected(procid::LookupError{procid::LookupError::Stage::Process, 0, 0,
                                                       std::string("identification failed: ") + e.what()}));
  }
}

void uv_on_after_work(uv_work_t* req, int status) noexcept {
  std::unique_ptr<IdentifyJob> job(static_cast<IdentifyJob*>(req->data));
  if (status == UV_ECANCELED || !job->result) return;  // the loop is shutting down
  job->server->on_identified(job->id, std::move(*job->result));
}

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

int queue_identify(uv_loop_t* loop, Server& server, SessionId id, const procid::TcpTuple& tuple,
                   const Identifier& identify) {
  auto job = std::make_unique<IdentifyJob>();
  job->server = &server;
  job->id = id;
  job->tuple = tuple;
  job->identify = &identify;
  job->req.data = job.get();
  const int rc = uv_queue_work(loop, &job->req, uv_on_work, uv_on_after_work);
  if (rc == 0) job.release();  // freed in uv_on_after_work
  return rc;
}

}  // namespace egressd::proxy
