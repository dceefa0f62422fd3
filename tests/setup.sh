#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs every Debian 12 package that dyetap's build, tests, demo and
# benchmarks need. Idempotent; runs apt-get update once per call.
# Usage: tests/setup.sh [--with-dpdk] [--with-bench]
set -eu
pkgs="meson ninja-build pkg-config gcc clang clang-format libclang-rt-14-dev
      libpcap-dev libzstd-dev libmsgpack-dev node-llhttp zlib1g-dev libbrotli-dev libssl-dev chromium
      libnghttp2-dev nghttp2-client nghttp2-server nghttp2-proxy python3-grpcio python3-protobuf python3-prometheus-client socat
      protobuf-compiler systemd
      tcpdump tshark nginx-light curl wrk python3 jq zstd gzip iproute2 procps openssl"
for a in "$@"; do
    case "$a" in
    --with-dpdk) pkgs="$pkgs dpdk-dev libdpdk-dev" ;;
    --with-bench) pkgs="$pkgs hyperfine valgrind time" ;;
    esac
done
# node and npm: tests/upgrades (npm installs the servers it compares) and
# the stateful replay test (json-server); an existing install, Debian's or
# another one, is kept as it is.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "setup: installing$missing"
    $SUDO apt-get update -qq
    # tshark asks whether non-root users may capture; answer no, quietly.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
echo "setup: all packages present"
