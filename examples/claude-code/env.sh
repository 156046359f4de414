# Source this in the shell (or the sandbox's profile) that starts Claude Code, so that Claude Code and
# the commands it runs (curl, git, wget, python, pip, npm, node) go through egressd and trust its CA:
#   . examples/claude-code/env.sh
#   EGRESSD=10.0.0.1:3128 EGRESSD_CA=/etc/egressd/ca.pem . examples/claude-code/env.sh
# EGRESSD is egressd's address (default 127.0.0.1:3128); EGRESSD_CA the certificate of the CA it signs
# with (default: the one `egressd run` generates, /var/lib/egressd/ca/ca.pem). The trust set-up is the
# one `egressd ca init` prints.
egressd_address=${EGRESSD:-127.0.0.1:3128}
egressd_ca=${EGRESSD_CA:-/var/lib/egressd/ca/ca.pem}
if [ ! -r "$egressd_ca" ]; then
  echo "env.sh: cannot read egressd's CA certificate $egressd_ca (set EGRESSD_CA); TLS through egressd will fail" >&2
fi

# The proxy. curl reads only the lowercase http_proxy, other programs the uppercase names; git, wget,
# python (requests, urllib) and pip read these. Loopback stays direct.
export http_proxy="http://${egressd_address}" https_proxy="http://${egressd_address}"
export HTTP_PROXY="$http_proxy" HTTPS_PROXY="$https_proxy"
export no_proxy="localhost,127.0.0.1,::1" NO_PROXY="localhost,127.0.0.1,::1"
# npm takes them from its own settings as well.
export NPM_CONFIG_PROXY="$http_proxy" NPM_CONFIG_HTTPS_PROXY="$https_proxy"
# node's own http and fetch use the variables above only when told to (node 22.21+ and 24.5+; older node
# ignores this, and code there passes a proxy agent, such as undici's ProxyAgent). Claude Code reads
# HTTPS_PROXY itself.
export NODE_USE_ENV_PROXY=1

# Trust: curl, git, wget, python (requests and ssl), pip and npm use the file they are given instead of
# the system CAs, so give them a bundle of the system CAs plus egressd's.
cat /etc/ssl/certs/ca-certificates.crt "$egressd_ca" > "$HOME/.egressd-ca-bundle.pem"
export CURL_CA_BUNDLE="$HOME/.egressd-ca-bundle.pem"
export GIT_SSL_CAINFO="$HOME/.egressd-ca-bundle.pem"
export REQUESTS_CA_BUNDLE="$HOME/.egressd-ca-bundle.pem"
export SSL_CERT_FILE="$HOME/.egressd-ca-bundle.pem"
export PIP_CERT="$HOME/.egressd-ca-bundle.pem"
export NPM_CONFIG_CAFILE="$HOME/.egressd-ca-bundle.pem"
printf 'ca_certificate = %s\n' "$HOME/.egressd-ca-bundle.pem" > "$HOME/.egressd-wgetrc"
export WGETRC="$HOME/.egressd-wgetrc"
# node (and so Claude Code) adds this file to its built-in CAs. node reads it once, when it starts: it
# must be in the environment claude starts with (settings.json alone is too late for some versions).
export NODE_EXTRA_CA_CERTS="$egressd_ca"

unset egressd_address egressd_ca
