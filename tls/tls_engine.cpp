#include "tls/tls_engine.h"

#include <fmt/format.h>
#include <openssl/err.h>

#include <utility>

#include "tls/certificate_fields.h"

namespace egressd::tls {
namespace {

// ALPN wire format (RFC 7301): length-prefixed protocol names.
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr size_t kReadChunkBytes = 16 * 1024;  // one TLS record's worth of plaintext

TlsError tls_error(TlsError::Kind kind, std::string detail) {
  return TlsError{kind, std::move(detail)};
}

// The drained OpenSSL errors, or `fallback` when the queue was empty.
std::string queued_or(std::string fallback) {
  std::string queued = drain_openssl_errors();
  return queued.empty() ? fallback : queued;
}

}  // namespace

TlsEngine::TlsEngine(TlsEngine&& other) noexcept
    : ssl_(std::move(other.ssl_)),
      cipher_in_(std::exchange(other.cipher_in_, nullptr)),
      cipher_out_(std::exchange(other.cipher_out_, nullptr)),
      leaf_(std::move(other.leaf_)),
      ciphertext_lost_(std::exchange(other.ciphertext_lost_, false)) {}

TlsEngine& TlsEngine::operator=(TlsEngine&& other) noexcept {
  if (this != &other) {
    ssl_ = std::move(other.ssl_);  // frees our old SSL and the BIOs it owned
    cipher_in_ = std::exchange(other.cipher_in_, nullptr);
    cipher_out_ = std::exchange(other.cipher_out_, nullptr);
    leaf_ = std::move(other.leaf_);
    ciphertext_lost_ = std::exchange(other.ciphertext_lost_, false);
  }
  return *this;
}

Result<TlsEngine, TlsError> TlsEngine::over_memory_bios(SSL_CTX* ctx) {
  if (ctx == nullptr) return unexpected(tls_error(TlsError::Kind::Handshake, "no SSL_CTX"));
  ERR_clear_error();
  TlsEngine engine;
  engine.ssl_.reset(SSL_new(ctx));
  if (engine.ssl_ == nullptr) {
    return unexpected(tls_error(TlsError::Kind::Handshake, "SSL_new failed: " + queued_or("out of memory")));
  }
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    return unexpected(tls_error(TlsError::Kind::Handshake, "BIO_new failed: " + queued_or("out of memory")));
  }
  // An empty input BIO means "no bytes yet" (retry), not end of stream: the socket's EOF is the proxy's.
  BIO_set_mem_eof_return(in, -1);
  SSL_set_bio(engine.ssl_.get(), in, out);  // the SSL owns both from here
  engine.cipher_in_ = in;
  engine.cipher_out_ = out;
  return engine;
}

Result<TlsEngine, TlsError> TlsEngine::server(std::shared_ptr<const Leaf> leaf) {
  if (leaf == nullptr || leaf->server_ctx == nullptr) {
    return unexpected(tls_error(TlsError::Kind::Handshake, "no leaf certificate to present"));
  }
  Result<TlsEngine, TlsError> engine = over_memory_bios(leaf->server_ctx.get());
  if (!engine) return engine;
  SSL_set_accept_state(engine->ssl_.get());
  engine->leaf_ = std::move(leaf);
  return engine;
}

Result<TlsEngine, TlsError> TlsEngine::client(SSL_CTX* ctx, const std::string& host) {
  const std::string name = fields::normalize_host(host);
  if (name.empty()) return unexpected(tls_error(TlsError::Kind::Handshake, "no host name to verify"));
  Result<TlsEngine, TlsError> engine = over_memory_bios(ctx);
  if (!engine) return engine;
  SSL* ssl = engine->ssl_.get();
  SSL_set_connect_state(ssl);
  auto failed = [&name](const char* call) {
    return unexpected(tls_error(TlsError::Kind::Handshake,
                                fmt::format("{} failed for '{}': {}", call, name, queued_or("no detail"))));
  };
  if (fields::is_ip_literal(name)) {
    // RFC 6066 3: SNI carries host names only, never addresses; the certificate must hold IP:name.
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
      return failed("X509_VERIFY_PARAM_set1_ip_asc");
    }
  } else {
    if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) return failed("SSL_set_tlsext_host_name");
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name.c_str()) != 1) return failed("SSL_set1_host");
  }
  if (SSL_set_alpn_protos(ssl, kAlpnHttp11, sizeof kAlpnHttp11) != 0) return failed("SSL_set_alpn_protos");
  return engine;
}

void TlsEngine::receive_ciphertext(std::string_view bytes) {
  if (cipher_in_ == nullptr || bytes.empty()) return;
  size_t written = 0;
  // A memory BIO grows as needed; it fails only when memory runs out. The next call reports that.
  if (BIO_write_ex(cipher_in_, bytes.data(), bytes.size(), &written) != 1 || written != bytes.size()) {
    ERR_clear_error();
    ciphertext_lost_ = true;
  }
}

TlsError TlsEngine::handshake_failure(int ssl_error) const {
  if (SSL_is_server(ssl_.get()) == 0) {
    const long verify_result = SSL_get_verify_result(ssl_.get());
    if (verify_result != X509_V_OK) {
      ERR_clear_error();  // "certificate verify failed" again, without the reason
      return tls_error(TlsError::Kind::Verify, std::string("certificate verify failed: ") +
                                                   X509_verify_cert_error_string(verify_result));
    }
  }
  const bool closed = ssl_error == SSL_ERROR_ZERO_RETURN || ssl_error == SSL_ERROR_SYSCALL;
  return tls_error(TlsError::Kind::Handshake,
                   queued_or(closed ? "the peer closed the connection during the handshake"
                                    : fmt::format("SSL_do_handshake failed (SSL_get_error {})", ssl_error)));
}

Result<TlsEngine::Progress, TlsError> TlsEngine::handshake() {
  if (ssl_ == nullptr)
    return unexpected(tls_error(TlsError::Kind::Handshake, "the TLS engine was moved from"));
  if (ciphertext_lost_)
    return unexpected(tls_error(TlsError::Kind::Io, "received ciphertext was lost (out of memory)"));
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) return Progress::Done;
  const int ssl_error = SSL_get_error(ssl_.get(), rc);
  if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) return Progress::NeedMore;
  return unexpected(handshake_failure(ssl_error));
}

bool TlsEngine::handshake_done() const {
  return ssl_ != nullptr && SSL_is_init_finished(ssl_.get()) == 1;
}

Result<bool, TlsError> TlsEngine::read_plaintext(std::string& out) {
  if (ssl_ == nullptr) return unexpected(tls_error(TlsError::Kind::Io, "the TLS engine was moved from"));
  if (ciphertext_lost_)
    return unexpected(tls_error(TlsError::Kind::Io, "received ciphertext was lost (out of memory)"));
  char buffer[kReadChunkBytes];
  for (;;) {
    ERR_clear_error();
    size_t length = 0;
    const int rc = SSL_read_ex(ssl_.get(), buffer, sizeof buffer, &length);
    if (rc == 1) {
      out.append(buffer, length);
      continue;
    }
    const int ssl_error = SSL_get_error(ssl_.get(), rc);
    switch (ssl_error) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:  // memory BIOs never refuse a write; kept for completeness
        return true;
      case SSL_ERROR_ZERO_RETURN:
        return false;  // close_notify
      default:
        if (!handshake_done()) return unexpected(handshake_failure(ssl_error));
        return unexpected(
            tls_error(TlsError::Kind::Io,
                      "TLS read failed: " +
                          queued_or(fmt::format("SSL_read_ex failed (SSL_get_error {})", ssl_error))));
    }
  }
}

Result<void, TlsError> TlsEngine::write_plaintext(std::string_view bytes) {
  if (ssl_ == nullptr) return unexpected(tls_error(TlsError::Kind::Io, "the TLS engine was moved from"));
  size_t offset = 0;
  while (offset < bytes.size()) {
    ERR_clear_error();
    size_t written = 0;
    const int rc = SSL_write_ex(ssl_.get(), bytes.data() + offset, bytes.size() - offset, &written);
    if (rc != 1) {
      const int ssl_error = SSL_get_error(ssl_.get(), rc);
      const std::string fallback = ssl_error == SSL_ERROR_WANT_READ
                                       ? "the handshake has not completed"
                                       : fmt::format("SSL_write_ex failed (SSL_get_error {})", ssl_error);
      return unexpected(tls_error(TlsError::Kind::Io, "TLS write failed: " + queued_or(fallback)));
    }
    offset += written;
  }
  return {};
}

void TlsEngine::shutdown() {
  if (ssl_ == nullptr || (SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) != 0) return;
  // One call queues our close_notify; we do not wait for the peer's (the proxy closes the socket).
  ERR_clear_error();
  (void)SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

std::string TlsEngine::take_ciphertext() {
  std::string bytes;
  if (cipher_out_ == nullptr) return bytes;
  for (size_t pending = BIO_ctrl_pending(cipher_out_); pending > 0; pending = BIO_ctrl_pending(cipher_out_)) {
    const size_t old_size = bytes.size();
    bytes.resize(old_size + pending);
    size_t read = 0;
    if (BIO_read_ex(cipher_out_, bytes.data() + old_size, pending, &read) != 1) {
      ERR_clear_error();
      bytes.resize(old_size);
      break;
    }
    bytes.resize(old_size + read);
  }
  return bytes;
}

std::string TlsEngine::sni() const {
  if (ssl_ == nullptr) return "";
  const char* name = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}

std::string TlsEngine::alpn() const {
  if (ssl_ == nullptr) return "";
  const unsigned char* protocol = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl_.get(), &protocol, &length);
  return protocol != nullptr ? std::string(reinterpret_cast<const char*>(protocol), length) : "";
}

std::string TlsEngine::peer_verify_error() const {
  if (ssl_ == nullptr) return "";
  const long verify_result = SSL_get_verify_result(ssl_.get());
  return verify_result == X509_V_OK ? "" : X509_verify_cert_error_string(verify_result);
}

}  // namespace egressd::tls
