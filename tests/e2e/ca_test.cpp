// The CA behind TLS termination: generated on first run (key 0600, reused afterwards), made on request
// with `egressd ca init`, and refused at start when its key is exposed or does not match.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

std::string openssl_text(const std::string& cert) {
  const RunResult r = run({"openssl", "x509", "-in", cert, "-noout", "-text"});
  REQUIRE(r.exit_code == 0);
  return r.out;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

RunResult run_egressd(const TempDir& dir, std::vector<std::string> extra) {
  std::vector<std::string> argv = {egressd_binary(), "run",          "--listen",
                                   "127.0.0.1:0",    "--ready-file", dir.file("ready")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run(argv, {.timeout = 10s});
}

}  // namespace

TEST_CASE("egressd ca init creates a CA with CA:TRUE pathlen 0, certificate and CRL signing, and a key 0600" *
          doctest::timeout(60)) {
  const TempDir dir;
  const std::string out = dir.file("ca");
  const RunResult init =
      run({egressd_binary(), "ca", "init", "--out", out, "--name", "Example Corp egress CA"});
  INFO(init.out, init.err);
  REQUIRE(init.exit_code == 0);
  CHECK(init.out.find(out + "/ca.pem") != std::string::npos);
  CHECK(init.out.find("NODE_EXTRA_CA_CERTS") != std::string::npos);
  CHECK(init.out.find("REQUESTS_CA_BUNDLE") != std::string::npos);
  CHECK(init.out.find("GIT_SSL_CAINFO") != std::string::npos);
  CHECK(mode_of(out + "/ca-key.pem") == 0600);
  const std::string text = openssl_text(out + "/ca.pem");
  CHECK(text.find("Basic Constraints: critical") != std::string::npos);
  CHECK(text.find("CA:TRUE, pathlen:0") != std::string::npos);
  CHECK(text.find("Key Usage: critical") != std::string::npos);
  CHECK(text.find("Certificate Sign, CRL Sign") != std::string::npos);
  CHECK(text.find("Subject Key Identifier") != std::string::npos);
  CHECK(text.find("CN = Example Corp egress CA") != std::string::npos);

  const RunResult again = run({egressd_binary(), "ca", "init", "--out", out});
  CHECK(again.exit_code == 1);  // never overwrites a CA
}

TEST_CASE("without --ca-cert the first run generates a CA in the state directory and later runs reuse it" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  std::string first_fingerprint;
  {
    Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
    const std::string ca = egressd.dir().file("state") + "/ca/ca.pem";
    CHECK(egressd.wait_for_stderr("generated a new CA in"));
    CHECK(egressd.stderr_text().find(ca) != std::string::npos);
    CHECK(mode_of(egressd.dir().file("state") + "/ca/ca-key.pem") == 0600);
    first_fingerprint = run({"openssl", "x509", "-in", ca, "-noout", "-fingerprint", "-sha256"}).out;
    CHECK(egressd.stop() == 0);
    // Started again on the same state directory: the same CA, nothing generated.
    Egressd again(policy_allowing(curl(), "127.0.0.1", origin.port()),
                  {"--state-dir", egressd.dir().file("state")});
    CHECK(again.stderr_text().find("generated a new CA") == std::string::npos);
    CHECK(run({"openssl", "x509", "-in", ca, "-noout", "-fingerprint", "-sha256"}).out == first_fingerprint);
  }
}

TEST_CASE("a CA key readable by group or others is refused at start, naming the file" *
          doctest::timeout(60)) {
  const TempDir dir;
  REQUIRE(run({egressd_binary(), "ca", "init", "--out", dir.file("ca")}).exit_code == 0);
  const std::string key = dir.file("ca") + "/ca-key.pem";
  REQUIRE(::chmod(key.c_str(), 0644) == 0);
  const RunResult r = run_egressd(dir, {"--ca-cert", dir.file("ca") + "/ca.pem", "--ca-key", key});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find(key) != std::string::npos);
  CHECK(r.err.find("readable by group or others") != std::string::npos);
  CHECK_FALSE(try_read_file(dir.file("ready")).has_value());  // never listened
}

TEST_CASE("a CA key that does not match the certificate is refused at start" * doctest::timeout(60)) {
  const TempDir dir;
  REQUIRE(run({egressd_binary(), "ca", "init", "--out", dir.file("a")}).exit_code == 0);
  REQUIRE(run({egressd_binary(), "ca", "init", "--out", dir.file("b")}).exit_code == 0);
  const RunResult r =
      run_egressd(dir, {"--ca-cert", dir.file("a") + "/ca.pem", "--ca-key", dir.file("b") + "/ca-key.pem"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("does not match") != std::string::npos);
  CHECK_FALSE(try_read_file(dir.file("ready")).has_value());
}

}  // namespace egressd::test::e2e
