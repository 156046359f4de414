#include "tests/support/server_stream.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <climits>
#include <stdexcept>

#include "tests/support/test_ca.h"

namespace egressd::test {
namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

[[noreturn]] void fail(const std::string& what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  char reason[256] = "no OpenSSL error queued";
  if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
  throw std::runtime_error("test TLS server: " + what + ": " + reason);
}

BioPtr memory_bio(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fail("allocating a BIO");
  return bio;
}

int select_http11(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
                  unsigned int offered_length, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_length, kAlpnHttp11, sizeof kAlpnHttp11, offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

TlsServerConfig::TlsServerConfig(const ServerCert& cert) : context_(SSL_CTX_new(TLS_server_method())) {
  if (!context_) fail("SSL_CTX_new");
  if (SSL_CTX_set_min_proto_version(context_.get(), TLS1_2_VERSION) != 1) fail("setting TLS 1.2 minimum");
  const BioPtr cert_bio = memory_bio(cert.cert_pem);
  const X509Ptr leaf(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(context_.get(), leaf.get()) != 1) fail("loading the certificate");
  // Any further certificates in the PEM are the chain sent after the leaf.
  while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(context_.get(), extra) != 1) {
      X509_free(extra);
      fail("adding a chain certificate");
    }
  }
  ERR_clear_error();  // the end of the PEM
  const BioPtr key_bio = memory_bio(cert.key_pem);
  const EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key || SSL_CTX_use_PrivateKey(context_.get(), key.get()) != 1 ||
      SSL_CTX_check_private_key(context_.get()) != 1) {
    fail("loading the private key");
  }
  SSL_CTX_set_alpn_select_cb(context_.get(), select_http11, nullptr);
}

TlsServerStream::TlsServerStream(ServerConnection& io, const TlsServerConfig& config)
    : io_(io), ssl_(SSL_new(config.get())) {
  if (!ssl_) fail("SSL_new");
  incoming_ = BIO_new(BIO_s_mem());
  outgoing_ = BIO_new(BIO_s_mem());
  if (!incoming_ || !outgoing_) {
    BIO_free(incoming_);
    BIO_free(outgoing_);
    fail("allocating memory BIOs");
  }
  BIO_set_mem_eof_return(incoming_, -1);  // an empty incoming BIO means "want more", not EOF
  SSL_set_bio(ssl_.get(), incoming_, outgoing_);
  SSL_set_accept_state(ssl_.get());
}

bool TlsServerStream::flush() {
  char buffer[16384];
  int n;
  while ((n = BIO_read(outgoing_, buffer, sizeof buffer)) > 0) {
    if (!io_.send_all(std::string_view(buffer, static_cast<size_t>(n)))) {
      broken_ = true;
      return false;
    }
  }
  return true;
}

bool TlsServerStream::receive() {
  std::string bytes;
  if (!io_.read_some(bytes)) {
    broken_ = true;
    return false;
  }
  if (BIO_write(incoming_, bytes.data(), static_cast<int>(bytes.size())) != static_cast<int>(bytes.size())) {
    broken_ = true;
    return false;
  }
  return true;
}

bool TlsServerStream::retry_after(int result) {
  const int error = SSL_get_error(ssl_.get(), result);
  if (error == SSL_ERROR_WANT_READ) return receive();
  if (error != SSL_ERROR_ZERO_RETURN) broken_ = true;  // close_notify is a clean end; anything else is not
  ERR_clear_error();
  return false;
}

bool TlsServerStream::handshake() {
  while (true) {
    const int result = SSL_do_handshake(ssl_.get());
    if (!flush()) return false;  // the handshake's own output, or the alert explaining a failure
    if (result == 1) break;
    if (!retry_after(result)) return false;
  }
  if (const char* name = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name)) sni_ = name;
  return true;
}

bool TlsServerStream::read_some(std::string& out) {
  char buffer[16384];
  while (true) {
    const int n = SSL_read(ssl_.get(), buffer, sizeof buffer);
    if (!flush()) return false;  // TLS 1.3 may answer a key update or send session tickets
    if (n > 0) {
      out.append(buffer, static_cast<size_t>(n));
      return true;
    }
    if (!retry_after(n)) return false;
  }
}

bool TlsServerStream::send_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const int n =
        SSL_write(ssl_.get(), bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX)));
    if (!flush()) return false;
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (!retry_after(n)) {
      return false;
    }
  }
  return true;
}

void TlsServerStream::finish() {
  if (broken_ || !SSL_is_init_finished(ssl_.get())) return;
  if (SSL_shutdown(ssl_.get()) < 0) ERR_clear_error();
  flush();
}

}  // namespace egressd::test
