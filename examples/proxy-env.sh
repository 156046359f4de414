# Source this in a sandbox shell to send the usual clients through egressd:
#   . examples/proxy-env.sh            (egressd on 127.0.0.1:3128)
#   EGRESSD=10.0.0.1:3128 . examples/proxy-env.sh
# curl reads only the lowercase http_proxy; git (libcurl) follows the same variables; node needs
# NODE_USE_ENV_PROXY=1 (Node 22.21+/24.5+) to use them at all. Loopback stays direct.
egressd_address=${EGRESSD:-127.0.0.1:3128}
export http_proxy="http://${egressd_address}" https_proxy="http://${egressd_address}"
export HTTP_PROXY="$http_proxy" HTTPS_PROXY="$https_proxy"
export no_proxy="localhost,127.0.0.1,::1" NO_PROXY="localhost,127.0.0.1,::1"
export NODE_USE_ENV_PROXY=1
unset egressd_address
