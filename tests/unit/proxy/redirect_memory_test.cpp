#include <doctest/doctest.h>

#include <chrono>

#include "proxy/redirect_memory.h"

using egressd::proxy::RedirectHop;
using egressd::proxy::RedirectMemory;
using namespace std::chrono_literals;

namespace {

const RedirectMemory::Clock::time_point kStart{};

RedirectHop hop(pid_t pid, const char* from, const char* to, const char* to_host,
                std::chrono::milliseconds at, const char* grant_rule = "") {
  RedirectHop h;
  h.pid = pid;
  h.exe = "/usr/bin/curl";
  h.status = 302;
  h.method = "GET";
  h.from_url = from;
  h.to_url = to;
  h.to_host = to_host;
  h.to_port = 443;
  h.grant_rule = grant_rule;
  h.at = kStart + at;
  return h;
}

}  // namespace

TEST_CASE("the chain into a host lists every hop that led there, oldest first") {
  RedirectMemory memory;
  memory.record(hop(7, "https://a/1", "https://b/2", "b", 0ms));
  memory.record(hop(7, "https://b/2", "https://c/3", "c", 1ms));
  memory.record(hop(7, "https://c/3", "https://d/4", "d", 2ms));
  const auto chain = memory.chain_to(7, "/usr/bin/curl", "d", 443, kStart + 3ms);
  REQUIRE(chain.size() == 3);
  CHECK(chain[0].from_url == "https://a/1");
  CHECK(chain[1].from_url == "https://b/2");
  CHECK(chain[2].from_url == "https://c/3");
  CHECK(egressd::proxy::redirect_chain_text(chain) ==
        "302 from GET https://a/1, then 302 from GET https://b/2, then 302 from GET https://c/3");
  CHECK(egressd::proxy::redirect_chain_json({chain[0]}) ==
        R"([{"status":302,"method":"GET","from":"https://a/1","to":"https://b/2"}])");
}

TEST_CASE("hops are per process, fall back to the same binary, and expire after the window") {
  RedirectMemory memory(60s);
  memory.record(hop(7, "https://a/1", "https://d/4", "d", 0ms));
  CHECK(memory.chain_to(7, "/usr/bin/curl", "d", 443, kStart + 1s).size() == 1);
  CHECK(memory.chain_to(8, "/usr/bin/curl", "d", 443, kStart + 1s).size() == 1);  // same binary
  CHECK(memory.chain_to(8, "/usr/bin/wget", "d", 443, kStart + 1s).empty());
  CHECK(memory.chain_to(7, "/usr/bin/curl", "d", 8443, kStart + 1s).empty());  // another port
  CHECK(memory.chain_to(7, "/usr/bin/curl", "d", 443, kStart + 61s).empty());  // window over
}

TEST_CASE("a redirect loop gives a bounded chain") {
  RedirectMemory memory;
  memory.record(hop(7, "https://a/1", "https://b/2", "b", 0ms));
  memory.record(hop(7, "https://b/2", "https://a/1", "a", 1ms));
  memory.record(hop(7, "https://a/1", "https://b/2", "b", 2ms));
  const auto chain = memory.chain_to(7, "/usr/bin/curl", "b", 443, kStart + 3ms);
  CHECK(chain.size() <= 3);
  CHECK_FALSE(chain.empty());
}

TEST_CASE("a grant covers exactly its URL, GET or HEAD, for its process, within the window") {
  RedirectMemory memory(60s);
  memory.record(hop(7, "https://mirror/x", "https://s3/b/k?sig=1", "s3", 0ms, "mirror"));
  memory.record(hop(7, "https://mirror/y", "https://other/z", "other", 0ms));  // no grant
  CHECK(memory.grant_into(7, "s3", 443, kStart + 1s) != nullptr);
  CHECK(memory.grant_into(8, "s3", 443, kStart + 1s) == nullptr);
  CHECK(memory.grant_into(7, "other", 443, kStart + 1s) == nullptr);
  CHECK(memory.grant_into(7, "s3", 443, kStart + 61s) == nullptr);
  const RedirectHop* grant = memory.grant_for(7, "GET", "https://s3/b/k?sig=1", kStart + 1s);
  REQUIRE(grant != nullptr);
  CHECK(grant->grant_rule == "mirror");
  CHECK(memory.grant_for(7, "HEAD", "https://s3/b/k?sig=1", kStart + 1s) != nullptr);
  CHECK(memory.grant_for(7, "PUT", "https://s3/b/k?sig=1", kStart + 1s) == nullptr);
  CHECK(memory.grant_for(7, "GET", "https://s3/b/k?sig=2", kStart + 1s) == nullptr);
  CHECK(memory.grant_for(7, "GET", "https://s3/b/other", kStart + 1s) == nullptr);
  CHECK(memory.grant_for(8, "GET", "https://s3/b/k?sig=1", kStart + 1s) == nullptr);
}

TEST_CASE("the memory is bounded: the oldest hops go first") {
  RedirectMemory memory(60s, 2);
  memory.record(hop(1, "https://a/1", "https://b/1", "b1", 0ms));
  memory.record(hop(1, "https://a/2", "https://b/2", "b2", 1ms));
  memory.record(hop(1, "https://a/3", "https://b/3", "b3", 2ms));
  CHECK(memory.size() == 2);
  CHECK(memory.chain_to(1, "/usr/bin/curl", "b1", 443, kStart + 3ms).empty());
  CHECK(memory.chain_to(1, "/usr/bin/curl", "b3", 443, kStart + 3ms).size() == 1);
}
