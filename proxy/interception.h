// Interception: what terminating TLS needs, built once by main.cpp and shared by every session: the
// leaf minter (the CA and the one leaf key), the LRU of minted leaves, and the upstream TLS settings.
// Loop thread only.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "tls/leaf_cache.h"
#include "tls/leaf_minter.h"
#include "tls/tls_engine.h"

namespace egressd::proxy {

class Interception {
 public:
  static constexpr size_t kLeafCacheCapacity = 1024;

  Interception(std::shared_ptr<const tls::CertificateAuthority> ca,
               std::shared_ptr<const tls::UpstreamTls> upstream)
      : minter_(std::move(ca)), leaves_(kLeafCacheCapacity), upstream_(std::move(upstream)) {}

  // The leaf for `host` (lowercase name or IP literal), from the cache or freshly minted.
  Result<std::shared_ptr<const tls::Leaf>, tls::TlsError> leaf_for(const std::string& host) {
    if (auto cached = leaves_.find(host)) return cached;
    auto minted = minter_.mint(host);
    if (minted) leaves_.insert(*minted);
    return minted;
  }
  SSL_CTX* upstream_ctx() const { return upstream_->ctx(); }
  const tls::LeafCache& leaves() const { return leaves_; }

 private:
  tls::LeafMinter minter_;
  tls::LeafCache leaves_;
  std::shared_ptr<const tls::UpstreamTls> upstream_;
};

}  // namespace egressd::proxy
