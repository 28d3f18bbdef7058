#!/usr/bin/env bash
# vigil's main job on an embedded default: `vigil demo` generates a seeded synthetic cluster
# (2,000 pods, 3 hours of metrics, logs, spans, audit events and Kubernetes events) with the
# three seed attacks and their decoys, stores it in an embedded store (.vigil/demo), runs
# the detection queries and prints what each found next to the ground truth.
# Extra arguments go to `vigil demo` (e.g. --pods 500 --hours 2 --data-dir /tmp/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil-target}"

if ! command -v clang >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    echo "installing clang, libclang-dev and make (needed to build RocksDB's bindings and jemalloc)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-dev make >/dev/null
fi

cargo build -q -p vigil-server --bin vigil
exec "$CARGO_TARGET_DIR/debug/vigil" demo "$@"
