// TlsEngine: one TLS connection driven through memory BIOs, so the event loop owns the socket and
// OpenSSL never touches it. The proxy writes received ciphertext in, reads plaintext out, writes
// plaintext in, and drains ciphertext to send. Single-threaded; one per TLS leg. Any call may queue
// ciphertext (handshake messages, alerts, TLS 1.3 post-handshake messages): take_ciphertext() after each.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "tls/error.h"
#include "tls/leaf_minter.h"
#include "tls/ssl_ptr.h"
#include "tls/upstream.h"  // UpstreamTls: the SSL_CTX that client() takes

namespace egressd::tls {

class TlsEngine {
 public:
  enum class Progress { NeedMore, Done };

  // The client-facing side of a terminated CONNECT, presenting `leaf`.
  static Result<TlsEngine, TlsError> server(std::shared_ptr<const Leaf> leaf);
  // The upstream side: `ctx` from UpstreamTls, SNI and hostname (or IP) verification for `host`.
  static Result<TlsEngine, TlsError> client(SSL_CTX* ctx, const std::string& host);

  // A moved-from engine owns nothing: its handshake and reads fail, its writes and drains are empty.
  TlsEngine(TlsEngine&& other) noexcept;
  TlsEngine& operator=(TlsEngine&& other) noexcept;

  // Ciphertext received from the peer.
  void receive_ciphertext(std::string_view bytes);
  // Drives the handshake as far as the received bytes allow. Done once it completed. Fails with Verify
  // (client side: "certificate verify failed: hostname mismatch") or Handshake (the drained OpenSSL errors).
  Result<Progress, TlsError> handshake();
  bool handshake_done() const;
  // Plaintext decrypted so far (appended to `out`). False once the peer sent close_notify (what came
  // before it is still appended). Also completes the handshake if it was not done yet.
  Result<bool, TlsError> read_plaintext(std::string& out);
  // Encrypts plaintext for the peer.
  Result<void, TlsError> write_plaintext(std::string_view bytes);
  // Sends close_notify.
  void shutdown();
  // Ciphertext to send to the peer (moved out; empty if none).
  std::string take_ciphertext();

  std::string sni() const;                // server side: the name the client asked for (empty if none)
  std::string alpn() const;               // negotiated protocol ("" or "http/1.1")
  std::string peer_verify_error() const;  // client side, after a failed handshake

 private:
  TlsEngine() = default;
  // An SSL for `ctx` over a fresh pair of memory BIOs; the caller sets the accept or connect state.
  static Result<TlsEngine, TlsError> over_memory_bios(SSL_CTX* ctx);
  TlsError handshake_failure(int ssl_error) const;
  SslPtr ssl_;
  BIO* cipher_in_ = nullptr;          // owned by ssl_: the proxy writes socket bytes in here
  BIO* cipher_out_ = nullptr;         // owned by ssl_: the proxy drains this into the socket
  std::shared_ptr<const Leaf> leaf_;  // keeps the server SSL_CTX alive
  bool ciphertext_lost_ = false;      // BIO_write failed (out of memory): the stream is broken
};

}  // namespace egressd::tls
