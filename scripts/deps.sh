#!/usr/bin/env bash
# Install the Debian packages GPUCache needs, only when missing (idempotent).
# Usage: scripts/deps.sh [build|bench|cache|all]
set -euo pipefail
what=${1:-build}
pkgs=(gcc clang make pkg-config meson ninja-build liburing-dev libisal-dev
      libxxhash-dev libinih-dev libucx-dev ucx-utils libmicrohttpd-dev
      libssl-dev curl python3)
case "$what" in
  bench|all) pkgs+=(fio util-linux redis-server redis-tools gnuplot-nox) ;;
  cache) pkgs+=(gnuplot-nox) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
