# Sourced by the other scripts: installs the Debian 12 packages that are missing, and nothing else.
# usage: ensure_packages PKG...
ensure_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages and not root: run as root, or: apt-get install ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What building egressd needs.
BUILD_PACKAGES=(cmake ninja-build g++ pkg-config libuv1-dev libssl-dev libyaml-cpp-dev libfmt-dev
                libspdlog-dev doctest-dev node-llhttp)
# What the tests drive: real clients.
TEST_PACKAGES=(curl ca-certificates systemd openssl python3 python3-requests wget nodejs node-undici git iproute2 nftables python3-yaml python3-pip groff-base nginx)
# What scripts/fuzz needs on top of BUILD_PACKAGES: clang, libFuzzer and the sanitizer runtimes
# (libclang-rt-dev), and llvm-symbolizer (llvm) for readable stacks.
FUZZ_PACKAGES=(clang libclang-rt-dev llvm)
# What bench/run compares egressd with (nginx is the origin; the quick bench, a test, needs it too).
BENCH_PACKAGES=(nginx squid-openssl tinyproxy mitmproxy)
