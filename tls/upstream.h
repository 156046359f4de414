// UpstreamTls: how egressd verifies the servers it dials for terminated CONNECTs: the system trust
// store plus an optional extra CA file (internal CAs). Built once at start, shared read-only.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "tls/error.h"
#include "tls/ssl_ptr.h"

namespace egressd::tls {

class UpstreamTls {
 public:
  // `extra_ca_file` ("" for none): PEM certificates trusted in addition to the system store. Fails,
  // naming the file, when it cannot be read or holds no certificate.
  static Result<std::shared_ptr<const UpstreamTls>, TlsError> create(const std::string& extra_ca_file);
  // Verification on (peer required, no partial chains); ALPN http/1.1; TLS 1.2+. Valid while this lives;
  // TlsEngine::client() sets the name to check per connection.
  SSL_CTX* ctx() const { return ctx_.get(); }

 private:
  SslCtxPtr ctx_;
};

}  // namespace egressd::tls
