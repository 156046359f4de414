// The example policy compiled into the binary, used by `egressd run` when no --policy is given.
#pragma once

namespace egressd::proxy {

extern const char* const kEmbeddedPolicy;
inline constexpr const char* kEmbeddedPolicyName = "<embedded policies/example.yaml>";

}  // namespace egressd::proxy
