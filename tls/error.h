// tls::TlsError: what failed, with OpenSSL's error queue drained into the detail
// ("certificate verify failed: unable to get local issuer certificate").
#pragma once

#include <string>

namespace egressd::tls {

struct TlsError {
  enum class Kind {
    CaUnusable,  // the CA files are missing, unreadable, unsafe or inconsistent
    Mint,        // a leaf certificate could not be made
    Handshake,   // the TLS handshake failed (either side)
    Verify,      // the upstream's certificate chain or name did not verify
    Io,          // a read/write on the TLS stream failed after the handshake
  };
  Kind kind = Kind::Handshake;
  std::string detail;
};

// Pops every error on this thread's OpenSSL error queue into one "; "-joined string (empty if none).
std::string drain_openssl_errors();

}  // namespace egressd::tls
