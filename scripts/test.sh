#!/usr/bin/env bash
# Osprey's test command: installs what the tests need on a fresh machine, then runs every
# check and test of the workspace. CI runs this through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real Kafka clients the integration tests drive: Debian's kcat (librdkafka 2.0.2) and the
# Python clients from PyPI; docker-compose and nsenter for the deployment tests (the Docker
# engine itself comes with the machine); for the fault campaign (tests/nemesis_smoke.rs,
# lazyfs/tests/mount.rs): ip (network namespaces, veths, bridges), nft (partitions),
# iptables (letting the campaign's bridge through the host's FORWARD chain), fusermount3
# and umount.
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: ${missing[*]} not installed and apt-get is unavailable" >&2
  fi
fi
for module in kafka:kafka-python confluent_kafka:confluent-kafka; do
  if ! python3 -c "import ${module%%:*}" >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check "${module#*:}"
  fi
done

cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
cargo test --workspace --no-fail-fast

# Every decoder of untrusted bytes: the committed corpus replayed and a short fuzz run of
# each target (the long campaign is `bash scripts/fuzz.sh campaign SECONDS`).
bash scripts/fuzz.sh smoke
