// UvHandle<T>: sole owner of one libuv handle. libuv uses a handle's memory until its close callback
// has run, so the memory is freed by that callback, never by this object's destructor.
#pragma once

#include <uv.h>

#include <concepts>
#include <memory>
#include <utility>

namespace egressd::proxy {

template <typename T>  // uv_tcp_t, uv_timer_t, uv_fs_event_t, uv_signal_t, uv_check_t, ...
class UvHandle {
 public:
  UvHandle() = default;
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { close(); }

  // init_fn is e.g. [loop](uv_tcp_t* h) { return uv_tcp_init(loop, h); }. Returns libuv's status.
  int init(void* owner, std::invocable<T*> auto init_fn) {
    close();
    auto fresh = std::make_unique<T>();
    if (int rc = init_fn(fresh.get()); rc != 0) return rc;  // never initialized: plain delete
    fresh->data = owner;
    handle_ = fresh.release();
    return 0;
  }

  // Idempotent. Request callbacks still in flight afterwards see data == nullptr ("owner gone").
  void close() noexcept {
    if (handle_ == nullptr) return;
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(handle_, nullptr)),
             [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
  }

  T* get() const { return handle_; }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(handle_); }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  explicit operator bool() const { return handle_ != nullptr; }

 private:
  T* handle_ = nullptr;
};

}  // namespace egressd::proxy
