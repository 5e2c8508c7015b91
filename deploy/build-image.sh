#!/usr/bin/env bash
# Builds the `osprey` Docker image from the project's own binary, without pulling anything:
# the image starts FROM scratch and holds the stripped binary and the shared libraries it
# links (found with ldd), plus the few files name resolution needs.
#
#   bash deploy/build-image.sh                 # release build, tagged osprey:latest
#   bash deploy/build-image.sh --binary PATH   # an already built binary
#   bash deploy/build-image.sh --tag NAME:TAG
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
tag="osprey:latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--tag NAME:TAG]" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  cargo build --release --quiet --bin osprey
  binary="${CARGO_TARGET_DIR:-target}/release/osprey"
fi
[ -x "$binary" ] || { echo "build-image: no executable at $binary" >&2; exit 2; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/var/lib/kafka/data"
chmod 1777 "$rootfs/tmp"
strip -o "$rootfs/usr/bin/osprey" "$binary"
# The dynamic loader and every library the binary links, at the paths the loader expects.
for lib in $(ldd "$binary" | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}'); do
  cp -L --parents "$lib" "$rootfs/"
done
# Docker mounts /etc/hosts, /etc/resolv.conf and /etc/hostname; read the hosts file first so
# `localhost` never waits on a DNS server.
printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/usr/bin/osprey\n' > "$rootfs/etc/passwd"
cp deploy/Dockerfile "$context/Dockerfile"
docker build --quiet --tag "$tag" "$context" >/dev/null
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "built $tag ($((size / 1000000)) MB)"
