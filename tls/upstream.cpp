#include "tls/upstream.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace egressd::tls {
namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

TlsError upstream_error(TlsError::Kind kind, std::string detail) {
  const std::string queued = drain_openssl_errors();
  if (!queued.empty()) detail += " (" + queued + ")";
  return TlsError{kind, std::move(detail)};
}

}  // namespace

Result<std::shared_ptr<const UpstreamTls>, TlsError> UpstreamTls::create(const std::string& extra_ca_file) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return unexpected(upstream_error(TlsError::Kind::Handshake, "SSL_CTX_new failed"));
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
    return unexpected(upstream_error(TlsError::Kind::Handshake, "SSL_CTX_set_min_proto_version failed"));
  }
  // No X509_V_FLAG_PARTIAL_CHAIN: a chain must end at a self-signed anchor in the store.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  // The system store: $SSL_CERT_FILE/$SSL_CERT_DIR, else OPENSSLDIR's cert.pem and certs/ (on Debian
  // /etc/ssl/certs/ca-certificates.crt and /etc/ssl/certs).
  if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return unexpected(upstream_error(TlsError::Kind::CaUnusable, "cannot load the system trust store"));
  }
  if (!extra_ca_file.empty()) {
    // open() first, for an errno that names the real problem; OpenSSL would only say "system library".
    const int fd = ::open(extra_ca_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return unexpected(
          TlsError{TlsError::Kind::CaUnusable,
                   fmt::format("cannot read extra CA file {}: {}", extra_ca_file, std::strerror(errno))});
    }
    ::close(fd);
    if (SSL_CTX_load_verify_locations(ctx.get(), extra_ca_file.c_str(), nullptr) != 1) {
      return unexpected(
          upstream_error(TlsError::Kind::CaUnusable,
                         fmt::format("extra CA file {} holds no usable PEM certificate", extra_ca_file)));
    }
  }
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnHttp11, sizeof kAlpnHttp11) != 0) {
    return unexpected(upstream_error(TlsError::Kind::Handshake, "SSL_CTX_set_alpn_protos failed"));
  }
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  auto upstream = std::make_shared<UpstreamTls>();
  upstream->ctx_ = std::move(ctx);
  return std::shared_ptr<const UpstreamTls>(std::move(upstream));
}

}  // namespace egressd::tls
