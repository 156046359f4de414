// `egressd ca init`: create a CA for TLS termination and print how clients trust it.
#include <cstdio>
#include <string>

#include "proxy/commands.h"
#include "tls/ca.h"

namespace egressd::proxy {

int command_ca(const Args& args) {
  if (args.empty() || args[0] != "init") {
    std::fputs("usage: egressd ca init --out DIR [--name CN]\n", stderr);
    return 2;
  }
  std::string out;
  std::string name = "egressd CA";
  for (size_t i = 1; i < args.size(); ++i) {
    if ((args[i] == "--out" || args[i] == "--name") && i + 1 < args.size()) {
      (args[i] == "--out" ? out : name) = std::string(args[i + 1]);
      ++i;
    } else {
      std::fprintf(stderr, "egressd ca init: unknown option '%s'\n", std::string(args[i]).c_str());
      return 2;
    }
  }
  if (out.empty()) {
    std::fputs("egressd ca init: --out DIR is required\n", stderr);
    return 2;
  }
  auto ca = tls::CertificateAuthority::generate(out, name);
  if (!ca) {
    std::fprintf(stderr, "egressd ca init: %s\n", ca.error().detail.c_str());
    return 1;
  }
  std::printf(
      "created %s (%s)\n  certificate: %s\n  key:         %s/ca-key.pem (mode 0600)\n"
      "  sha256:      %s\n\nTo let clients trust it:\n%s",
      (*ca)->subject().c_str(), name.c_str(), (*ca)->cert_path().c_str(), out.c_str(),
      (*ca)->sha256_fingerprint().c_str(), tls::client_trust_instructions((*ca)->cert_path()).c_str());
  return 0;
}

}  // namespace egressd::proxy
