// Internal to tls/: the pieces CertificateAuthority and LeafMinter both need to build an X.509v3
// certificate, and the host-name normalization shared by the minter, the cache and the engine.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "tls/ssl_ptr.h"

namespace egressd::tls::fields {

// True for an IPv4 or IPv6 literal (IPv6 without brackets), as inet_pton reads them.
bool is_ip_literal(const std::string& host);

// Lowercase, and an IPv6 literal without its brackets: the form leaves are minted and cached under.
std::string normalize_host(std::string_view host);

// A random positive 128-bit serial (RFC 5280 4.1.2.2 asks for at most 20 octets, unpredictable).
bool set_random_serial(X509* cert);

// notBefore = now + not_before_offset_s, notAfter = now + not_after_days days + not_after_s.
bool set_validity(X509* cert, time_t now, long not_before_offset_s, int not_after_days, long not_after_s);

// Adds one extension written in openssl.cnf syntax (e.g. "critical,CA:TRUE,pathlen:0"). `issuer` may be
// `cert` itself (self-signed); `cert` must already carry its public key for "hash" identifiers.
bool add_extension(X509* cert, X509* issuer, int nid, const char* value);

// "Jan  2 03:04:05 2035 GMT".
std::string time_text(const ASN1_TIME* time);

}  // namespace egressd::tls::fields
