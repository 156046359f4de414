// The byte stream a test server's handler reads requests from and writes responses to: the accepted
// connection itself, or TLS over it. TLS runs an SSL object over memory BIOs and moves the ciphertext with
// ServerConnection::read_some/send_all, so TcpServer::stop() wakes a TLS handler exactly as a plain one.
// A stream is used only on its connection's thread.
#pragma once

#include <string>
#include <string_view>

#include "tests/support/openssl_ptr.h"
#include "tests/support/tcp_server.h"

namespace egressd::test {

struct ServerCert;

class ServerStream {
 public:
  virtual ~ServerStream() = default;
  // Appends the next bytes that arrive to `out`. False at EOF, on an error, or when the server stops.
  virtual bool read_some(std::string& out) = 0;
  // Sends every byte. False if the peer went away or the server stopped.
  virtual bool send_all(std::string_view bytes) = 0;
  // Ends the stream politely before the connection closes (TLS: close_notify). Best effort.
  virtual void finish() = 0;
};

class PlainServerStream final : public ServerStream {
 public:
  explicit PlainServerStream(ServerConnection& io) : io_(io) {}
  bool read_some(std::string& out) override { return io_.read_some(out); }
  bool send_all(std::string_view bytes) override { return io_.send_all(bytes); }
  void finish() override {}

 private:
  ServerConnection& io_;
};

// The server side of TLS for one certificate: TLS 1.2 and up, ALPN http/1.1 when the client offers it
// (a client offering only other protocols gets no ALPN rather than a failed handshake). Shared by every
// connection of a server; throws std::runtime_error when the certificate or key does not load.
class TlsServerConfig {
 public:
  explicit TlsServerConfig(const ServerCert& cert);
  SSL_CTX* get() const { return context_.get(); }

 private:
  SslCtxPtr context_;
};

class TlsServerStream final : public ServerStream {
 public:
  TlsServerStream(ServerConnection& io, const TlsServerConfig& config);

  // Runs the server handshake. False if it failed, the peer went away or the server stopped.
  bool handshake();
  // The server name the client sent (SNI), or empty when it sent none. Known once handshake() is done.
  const std::string& sni() const { return sni_; }

  bool read_some(std::string& out) override;
  bool send_all(std::string_view bytes) override;
  void finish() override;

 private:
  // Sends whatever TLS has queued in the outgoing BIO.
  bool flush();
  // Moves the next ciphertext that arrives into the incoming BIO.
  bool receive();
  // After a TLS call returned `result`: true if it only wants more input and that input arrived.
  bool retry_after(int result);

  ServerConnection& io_;
  SslPtr ssl_;
  BIO* incoming_ = nullptr;  // owned by ssl_
  BIO* outgoing_ = nullptr;  // owned by ssl_
  bool broken_ = false;      // a fatal TLS error or a closed transport: no close_notify then
  std::string sni_;
};

}  // namespace egressd::test
