#!/usr/bin/env bash
# Installs every build, run and test dependency from Debian packages. Idempotent: packages already
# present are skipped without touching apt's lists.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config git python3 python3-yaml
  clang llvm libbpf-dev bpftool linux-libc-dev
  libprotobuf-dev protobuf-compiler
  libpcap-dev libzstd-dev libnghttp2-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libcpp-httplib-dev libsnappy-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # run
  clickhouse-server clickhouse-client curl iproute2 procps
  # tests: real servers and clients, capture tools, network namespaces
  tcpdump tshark nftables nginx redis-server redis-tools mariadb-server mariadb-client
  postgresql postgresql-client mosquitto mosquitto-clients dnsmasq dnsutils nghttp2-client
  nghttp2-server python3-h2 openssl wrk
  libyaml-cpp-dev
  libndpi-bin
  python3-grpcio
  nodejs
  libclang-rt-14-dev
  zlib1g-dev
  libgoogle-perftools-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
# Services from these packages must not start on install: tests start their own on private ports.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
