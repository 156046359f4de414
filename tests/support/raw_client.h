// A tiny blocking TCP client for hand-written requests, to check the exact bytes egressd answers (a
// CONNECT 403 body, a 400, a 431). It runs inside the test binary, whose executable no policy lists, so
// egressd denies whatever it asks for. Failures to connect throw std::runtime_error.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/support/unique_fd.h"

namespace egressd::test {

class RawClient {
 public:
  // Connects to a numeric address ("127.0.0.1", "::1") within `deadline`.
  RawClient(const std::string& host, uint16_t port,
            std::chrono::milliseconds deadline = std::chrono::milliseconds(5000));

  // Sends every byte, reading whatever arrives meanwhile (a server may answer and close before reading
  // everything, as with a 431). False if the peer closed or reset before all was sent.
  bool send(std::string_view bytes, std::chrono::milliseconds deadline = std::chrono::milliseconds(10'000));
  void shutdown_write();
  // Everything received until the peer closes, or until the deadline (then `timed_out()` is true).
  std::string read_until_close(std::chrono::milliseconds deadline = std::chrono::milliseconds(10'000));
  // Reads until at least `n` bytes have been received in total, the peer closes, or the deadline passes.
  std::string read_at_least(size_t n, std::chrono::milliseconds deadline = std::chrono::milliseconds(10'000));
  // Reads until `marker` has been received (e.g. "\r\n\r\n"), the peer closes, or the deadline passes.
  std::string read_until(std::string_view marker,
                         std::chrono::milliseconds deadline = std::chrono::milliseconds(10'000));

  // Everything received so far, whichever call read it; `take_received` also empties it.
  const std::string& received() const { return received_; }
  std::string take_received();
  bool peer_closed() const { return peer_closed_; }
  bool timed_out() const { return timed_out_; }
  uint16_t local_port() const { return local_port_; }
  // The socket itself (non-blocking), for a test that needs raw control; still owned by the RawClient.
  int fd() const { return fd_.get(); }

 private:
  // Reads once, waiting at most `timeout_ms`; false on a timeout or once nothing more can come.
  bool read_once(int timeout_ms);

  UniqueFd fd_;
  std::string received_;
  bool peer_closed_ = false;
  bool timed_out_ = false;
  uint16_t local_port_ = 0;
};

}  // namespace egressd::test
