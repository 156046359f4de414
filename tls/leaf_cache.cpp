#include "tls/leaf_cache.h"

#include <chrono>

#include "tls/certificate_fields.h"

namespace egressd::tls {
namespace {

// A leaf this close to its notAfter is minted afresh: a long-lived connection using it stays valid.
constexpr std::chrono::hours kRenewBefore(1);

}  // namespace

LeafCache::LeafCache(size_t capacity) : capacity_(capacity) {}

std::shared_ptr<const Leaf> LeafCache::find(const std::string& host) {
  const auto entry = index_.find(fields::normalize_host(host));
  if (entry == index_.end()) {
    ++misses_;
    return nullptr;
  }
  const auto position = entry->second;
  if ((*position)->not_after - std::chrono::system_clock::now() < kRenewBefore) {
    order_.erase(position);
    index_.erase(entry);
    ++misses_;
    return nullptr;
  }
  order_.splice(order_.begin(), order_, position);  // most recent first; iterators stay valid
  ++hits_;
  return *position;
}

void LeafCache::insert(std::shared_ptr<const Leaf> leaf) {
  if (leaf == nullptr) return;
  if (const auto existing = index_.find(leaf->host); existing != index_.end()) {
    order_.erase(existing->second);
    index_.erase(existing);
  }
  order_.push_front(std::move(leaf));
  index_.emplace(order_.front()->host, order_.begin());
  while (index_.size() > capacity_) {
    // Sessions holding the evicted leaf keep it alive through their own shared_ptr.
    index_.erase(order_.back()->host);
    order_.pop_back();
  }
}

}  // namespace egressd::tls
