// A bounded LRU of minted leaves by host. Entries are shared_ptr<const Leaf>: a leaf evicted while a
// session still uses it stays valid for that session. Not thread-safe: owned by the event loop thread.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "tls/leaf_minter.h"

namespace egressd::tls {

class LeafCache {
 public:
  explicit LeafCache(size_t capacity);

  // The cached leaf for `host` if present and not within an hour of expiry (and marks it most recent);
  // a leaf that close to expiry is dropped. `host` is matched as minted: lowercase, IPv6 without brackets.
  std::shared_ptr<const Leaf> find(const std::string& host);
  void insert(std::shared_ptr<const Leaf> leaf);  // evicts the least recently used beyond capacity

  size_t size() const { return index_.size(); }
  size_t hits() const { return hits_; }
  size_t misses() const { return misses_; }

 private:
  size_t capacity_;
  std::list<std::shared_ptr<const Leaf>> order_;  // most recent first
  std::unordered_map<std::string, std::list<std::shared_ptr<const Leaf>>::iterator> index_;
  size_t hits_ = 0;
  size_t misses_ = 0;
};

}  // namespace egressd::tls
