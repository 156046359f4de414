// Leaf certificates for terminated CONNECTs: one per host, signed by the CA, with the one shared P-256
// leaf key. Thread-safe (minting may run on the thread pool). Each Leaf is immutable and carries a
// ready server SSL_CTX (ALPN http/1.1 only).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"
#include "tls/ca.h"
#include "tls/error.h"
#include "tls/ssl_ptr.h"

namespace egressd::tls {

struct Leaf {
  std::string host;  // lowercase name or IP literal (IPv6 without brackets)
  X509Ptr certificate;
  SslCtxPtr server_ctx;  // certificate + chain (leaf, CA) + the shared key; ALPN "http/1.1"
  std::chrono::system_clock::time_point not_after;
};

class LeafMinter {
 public:
  // validity: how long a leaf is valid (it also starts an hour in the past, for clock skew).
  LeafMinter(std::shared_ptr<const CertificateAuthority> ca,
             std::chrono::hours validity = std::chrono::hours(24));

  // A new leaf for `host`: subjectAltName DNS:host, or IP:host for an IP literal; CN = host; random
  // 128-bit serial; basicConstraints CA:FALSE; keyUsage digitalSignature; extendedKeyUsage serverAuth;
  // authority key identifier of the CA. `host` is lowercased and an IPv6 literal may come in brackets;
  // anything else than a DNS name (letters, digits, '-', '_', '.') or an IP literal is refused (Mint).
  Result<std::shared_ptr<const Leaf>, TlsError> mint(const std::string& host) const;

 private:
  std::shared_ptr<const CertificateAuthority> ca_;
  EvpPkeyPtr leaf_key_;  // one key for every leaf: minting is a signature, not a key generation
  std::chrono::hours validity_;
};

}  // namespace egressd::tls
