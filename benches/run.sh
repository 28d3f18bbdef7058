#!/usr/bin/env bash
# Runs vigil's storage benchmarks and the DuckDB/chDB comparisons side by side, in one run,
# and prints one JSON line per measurement. Results go in docs/benchmarks.md.
#
#   benches/run.sh [WORK_DIR]       (default: a temporary directory; needs ~15 GB free)
#
# Knobs: PODS (default 6000), HOURS (6), NODES (100), COMPRESSION_HOURS (24), TEMPORAL_PODS (2000),
# OTLP_REQUESTS (3000).
# Run one part alone with PART=storage, PART=temporal, PART=serve, PART=sql or PART=retention.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil-target}"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
python3 -c "import duckdb, chdb, pyarrow, adbc_driver_flightsql" 2>/dev/null || pip install -q duckdb chdb pyarrow adbc-driver-flightsql

# The binaries measured are built as shipped: profile `release-lto` (fat LTO, one codegen
# unit; see Cargo.toml). PROFILE=release builds faster and runs 5-20% slower.
profile="${PROFILE:-release-lto}"
if [ "${PART:-all}" = temporal ]; then
    cargo build -q --profile "$profile" -p vigil-benches --bin vigil-bench
else
    cargo build -q --profile "$profile" -p vigil-benches -p vigil-server --bins
fi
out="$CARGO_TARGET_DIR/$profile"
bench="$out/vigil-bench"

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(date -u +%FT%TZ)"

# vigil serve under OTLP load over loopback (1,000 points or records per request, default
# sync durability) and audit EventLists through the webhook; each run on a fresh store.
if [ "${PART:-all}" = all ] || [ "${PART:-all}" = serve ]; then
load="$out/otlp-load"
n="${OTLP_REQUESTS:-3000}"
for transport in grpc http; do
    "$load" --signal metrics --transport "$transport" --requests "$n" --concurrency 8
    "$load" --signal logs --transport "$transport" --requests "$((n / 2))" --concurrency 8
done
"$load" --signal audit --transport http --requests 300 --batch 100 --concurrency 8
[ "${PART:-all}" = serve ] && exit 0
fi

# SQL served over the network: a 10-million-row Flight SQL stream (ADBC) against pyarrow
# reading the same rows from DuckDB, then 32 Flight SQL clients running pod lookups and
# dashboard aggregates for 60 s while 100,000 metric points/s arrive over OTLP.
if [ "${PART:-all}" = all ] || [ "${PART:-all}" = sql ]; then
[ -d "$work/sql-store" ] || "$bench" build --dir "$work/sql-store" --pods "${SQL_PODS:-2000}" --hours "${SQL_HOURS:-4}"
python3 benches/flight_stream.py --vigil "$out/vigil" --data-dir "$work/sql-store" --rows "${STREAM_ROWS:-10000000}"
"$out/sql-load" --data-dir "$work/sql-store" --clients 32 --seconds 60 --ingest-rate 100000
[ "${PART:-all}" = sql ] && exit 0
fi

# Retention: one pass over ~50 million metric rows of which a third has expired (downsampled
# to 1-minute rollups, then deleted outright, each on a fresh copy), and a 30-day hourly
# dashboard answered from raw rows and from rollups.
if [ "${PART:-all}" = all ] || [ "${PART:-all}" = retention ]; then
retention="$out/retention-bench"
"$retention" pass --dir "$work/retention-pass" --mode downsample
"$retention" pass --dir "$work/retention-pass" --mode delete
"$retention" query --dir "$work/retention-query"
[ "${PART:-all}" = retention ] && exit 0
fi

if [ "${PART:-all}" != temporal ]; then
"$bench" ingest --export "$work/ingest.parquet"
python3 benches/compare.py ingest --file "$work/ingest.parquet"

"$bench" compression --dir "$work/compression" --nodes "${NODES:-100}" --hours "${COMPRESSION_HOURS:-24}" --export "$work/node_metrics.parquet"
python3 benches/compare.py compression --file "$work/node_metrics.parquet"

[ -d "$work/store" ] || "$bench" build --dir "$work/store" --pods "${PODS:-6000}" --hours "${HOURS:-6}"
"$bench" pod-hour --dir "$work/store"
"$bench" aggregate --dir "$work/store"
python3 benches/compare.py aggregate --store "$work/store"
fi

# Temporal SQL: ASOF JOINs, the band join and MATCH_RECOGNIZE on 2,000 pods x 6 hours with a
# million audit events, against DuckDB and chDB on the same rows (exported as Parquet).
[ "${PART:-all}" = storage ] && exit 0
"$bench" temporal --dir "$work/temporal" --pods "${TEMPORAL_PODS:-2000}" --hours "${HOURS:-6}" --export "$work/temporal-export"
python3 benches/compare.py temporal --dir "$work/temporal-export"
# DataFusion's own planning of the band join (PyPI `datafusion`), the floor under vigil's.
python3 -c "import datafusion" 2>/dev/null || pip install -q 'datafusion>=55,<56'
python3 benches/compare.py plan-floor --dir "$work/temporal-export"
