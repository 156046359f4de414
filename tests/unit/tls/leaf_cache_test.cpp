// The LRU of minted leaves: counters, eviction order, expiry, and that an evicted leaf stays usable.
#include "tls/leaf_cache.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "tests/unit/tls/tls_fixtures.h"

namespace egressd::tls {
namespace {

using std::chrono::hours;
using std::chrono::system_clock;

// A stand-in leaf: the cache looks only at host and not_after.
std::shared_ptr<const Leaf> fake_leaf(const std::string& host, system_clock::duration valid_for = hours(24)) {
  auto leaf = std::make_shared<Leaf>();
  leaf->host = host;
  leaf->not_after = system_clock::now() + valid_for;
  return leaf;
}

TEST_CASE("find() counts a miss for an unknown host and a hit for a cached one") {
  LeafCache cache(4);
  CHECK(cache.find("a.example") == nullptr);
  CHECK(cache.misses() == 1);
  CHECK(cache.hits() == 0);
  const auto leaf = fake_leaf("a.example");
  cache.insert(leaf);
  CHECK(cache.size() == 1);
  CHECK(cache.find("a.example") == leaf);
  CHECK(cache.find("A.Example") == leaf);  // hosts are looked up as they are minted: lowercase
  CHECK(cache.hits() == 2);
  CHECK(cache.misses() == 1);
  CHECK(cache.find("b.example") == nullptr);
  CHECK(cache.misses() == 2);
}

TEST_CASE("at capacity the least recently used leaf goes, and find() makes a leaf recent again") {
  LeafCache cache(3);
  for (const char* host : {"a", "b", "c"}) cache.insert(fake_leaf(host));
  REQUIRE(cache.find("a") != nullptr);  // order now a, c, b (most recent first)
  cache.insert(fake_leaf("d"));         // evicts b
  CHECK(cache.size() == 3);
  struct Row {
    const char* host;
    bool cached;
  };
  const Row after_d[] = {{"a", true}, {"b", false}, {"c", true}, {"d", true}};
  for (const Row& row : after_d) {
    CAPTURE(row.host);
    CHECK((cache.find(row.host) != nullptr) == row.cached);
  }
  // Those finds left the order d, c, a: the next insert evicts a.
  cache.insert(fake_leaf("e"));
  const Row after_e[] = {{"a", false}, {"c", true}, {"d", true}, {"e", true}};
  for (const Row& row : after_e) {
    CAPTURE(row.host);
    CHECK((cache.find(row.host) != nullptr) == row.cached);
  }
  CHECK(cache.size() == 3);
}

TEST_CASE("insert() replaces the leaf cached for the same host without growing") {
  LeafCache cache(2);
  const auto old_leaf = fake_leaf("a");
  const auto new_leaf = fake_leaf("a");
  cache.insert(old_leaf);
  cache.insert(fake_leaf("b"));
  cache.insert(new_leaf);  // also the most recent now
  CHECK(cache.size() == 2);
  CHECK(cache.find("a") == new_leaf);
  cache.insert(fake_leaf("c"));  // evicts b, not a
  CHECK(cache.find("a") == new_leaf);
  CHECK(cache.find("b") == nullptr);
}

TEST_CASE("a leaf within an hour of its notAfter is a miss and leaves the cache") {
  LeafCache cache(4);
  struct Row {
    const char* host;
    system_clock::duration valid_for;
    bool hit;
  };
  const Row rows[] = {{"expired", -hours(1), false},
                      {"closing", std::chrono::minutes(59), false},
                      {"fresh", std::chrono::minutes(61), true}};
  for (const Row& row : rows) cache.insert(fake_leaf(row.host, row.valid_for));
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CHECK((cache.find(row.host) != nullptr) == row.hit);
  }
  CHECK(cache.size() == 1);
  CHECK(cache.hits() == 1);
  CHECK(cache.misses() == 2);
}

TEST_CASE("a leaf evicted while a session still holds it stays valid for a handshake") {
  const fixtures::TestCa test_ca;
  const LeafMinter minter(test_ca.ca());
  LeafCache cache(1);
  auto minted = minter.mint("held.example");
  REQUIRE(minted.has_value());
  cache.insert(*minted);
  std::shared_ptr<const Leaf> held = cache.find("held.example");
  REQUIRE(held != nullptr);
  minted = minter.mint("other.example");
  REQUIRE(minted.has_value());
  cache.insert(*minted);
  minted = minter.mint("third.example");  // drop every other reference the test had
  REQUIRE(minted.has_value());
  REQUIRE(cache.find("held.example") == nullptr);
  CHECK(held.use_count() == 1);

  auto upstream = UpstreamTls::create(test_ca.cert_path());
  REQUIRE(upstream.has_value());
  auto server = TlsEngine::server(std::move(held));
  auto client = TlsEngine::client((*upstream)->ctx(), "held.example");
  REQUIRE(server.has_value());
  REQUIRE(client.has_value());
  const auto failure = fixtures::complete_handshake(*client, *server);
  CHECK_MESSAGE(!failure.has_value(), (failure ? failure->error.detail : ""));
}

TEST_CASE("a cache of capacity zero keeps nothing") {
  LeafCache cache(0);
  cache.insert(fake_leaf("a"));
  CHECK(cache.size() == 0);
  CHECK(cache.find("a") == nullptr);
}

}  // namespace
}  // namespace egressd::tls
