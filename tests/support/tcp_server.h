// A loopback TCP server for tests: binds 127.0.0.1 or ::1 on an ephemeral port, accepts on its own
// thread and runs a handler on one thread per connection. LocalOrigin and LocalTcpEcho are handlers.
// stop() (also run by the destructor) wakes every blocked read, shuts every connection down and joins
// every thread; handlers must return once a ServerConnection call reports the server is stopping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "tests/support/unique_fd.h"

namespace egressd::test {

// One accepted connection, as its handler thread sees it. Used only on that thread; the fd is owned by
// the TcpServer and closed when the handler returns.
class ServerConnection {
 public:
  ServerConnection(int fd, int stop_fd, size_t index) : fd_(fd), stop_fd_(stop_fd), index_(index) {}

  // Appends the next bytes that arrive to `out`. False at EOF, on an error, or when the server stops.
  bool read_some(std::string& out);
  // Sends every byte (blocking). False if the peer went away or the server stopped.
  bool send_all(std::string_view bytes);
  void shutdown_write();
  // Makes the close that follows the handler's return a reset (RST) rather than an orderly FIN.
  void reset_on_close();
  // Waits `duration` (the pacing of a slow response). False if the server began stopping meanwhile.
  bool pause_for(std::chrono::milliseconds duration);
  // 1 for the first connection the server accepted, 2 for the next, ...
  size_t index() const { return index_; }

 private:
  int fd_;       // owned by TcpServer
  int stop_fd_;  // owned by TcpServer; readable once stop() began
  size_t index_;
};

class TcpServer {
 public:
  using Handler = std::function<void(ServerConnection&)>;

  // `address` is "127.0.0.1", "::1" or another numeric address of this host; the kernel picks the port.
  TcpServer(const std::string& address, Handler handler);
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;
  ~TcpServer() { stop(); }

  void stop();
  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }
  // "127.0.0.1:PORT" or "[::1]:PORT": the authority form of the listening address.
  std::string host_port() const;
  size_t connections_accepted() const { return accepted_.load(); }

 private:
  struct Connection {
    UniqueFd fd;
    bool closed = false;  // guarded by TcpServer::connections_mutex_
    std::thread thread;
  };

  void accept_loop();
  void serve(Connection& connection, size_t index);

  std::string address_;
  uint16_t port_ = 0;
  Handler handler_;
  UniqueFd listen_fd_;
  UniqueFd stop_read_;  // a pipe: stop() writes one byte and nobody reads it, so it stays readable
  UniqueFd stop_write_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> accepted_{0};
  std::mutex connections_mutex_;
  std::list<Connection> connections_;  // list: stable addresses for the threads using them
  std::thread accept_thread_;
};

}  // namespace egressd::test
