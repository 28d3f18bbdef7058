#!/usr/bin/env bash
# Runs every test of the workspace. Installs what a fresh machine lacks first
# (clang and libclang for RocksDB's bindings).
set -euo pipefail
cd "$(dirname "$0")/.."

need_install=()
command -v clang >/dev/null 2>&1 || need_install+=(clang)
ldconfig -p 2>/dev/null | grep -q 'libclang' || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need_install+=(libclang-dev)
command -v make >/dev/null 2>&1 || need_install+=(make)
if [ ${#need_install[@]} -gt 0 ]; then
    echo "installing ${need_install[*]} (needed to build RocksDB's bindings and jemalloc)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_install[@]}" >/dev/null
fi

# The ASOF JOIN comparison test runs DuckDB from Python.
if ! python3 -c "import duckdb" >/dev/null 2>&1; then
    echo "installing the duckdb Python package (the ASOF JOIN comparison test runs it)"
    python3 -m pip install --quiet duckdb || pip install --quiet --break-system-packages duckdb
fi

# The end-to-end ingest test sends data with the real OpenTelemetry Python SDK.
if ! python3 -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http" >/dev/null 2>&1; then
    echo "installing the OpenTelemetry Python SDK and OTLP exporters (the ingest test uses them)"
    python3 -m pip install --quiet opentelemetry-sdk opentelemetry-exporter-otlp \
        || pip install --quiet --break-system-packages opentelemetry-sdk opentelemetry-exporter-otlp
fi

# The Flight SQL test talks to the server with ADBC's Flight SQL driver (and pyarrow).
if ! python3 -c "import adbc_driver_flightsql.dbapi, pyarrow" >/dev/null 2>&1; then
    echo "installing adbc-driver-flightsql and pyarrow (the Flight SQL test uses them)"
    python3 -m pip install --quiet adbc-driver-flightsql adbc-driver-manager pyarrow \
        || pip install --quiet --break-system-packages adbc-driver-flightsql adbc-driver-manager pyarrow
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Formatting is checked first: it takes a second and names the file that differs.
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast --lib --bins --tests
fi
cargo test --workspace --doc
