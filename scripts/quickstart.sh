#!/usr/bin/env bash
# vigil's main job on an embedded default, until `vigil demo` exists: generate a synthetic
# cluster's telemetry (200 pods, one hour, all five kinds), import it into an embedded
# store, and ask it questions.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil-target}"

cargo build -q -p vigil-server --bin vigil
vigil="$CARGO_TARGET_DIR/debug/vigil"
work="${VIGIL_QUICKSTART_DIR:-$(mktemp -d)}"
data="$work/data"
store="$work/store"

"$vigil" generate --out "$data" --pods 200 --hours 1
for table in metrics logs spans audit events; do
    "$vigil" import --data-dir "$store" --kind "$table" --durability buffered "$data/$table.parquet"
done

q() { echo; echo "vigil> $1"; "$vigil" sql --data-dir "$store" "$1"; }
q "SELECT kind, count(*) AS rows FROM signals GROUP BY kind ORDER BY kind"
q "SELECT namespace, round(avg(value), 3) AS avg_cpu_cores, round(max(value), 3) AS peak FROM metrics WHERE name = 'container_cpu_usage_cores' GROUP BY namespace ORDER BY peak DESC"
q "SELECT pod, image FROM events WHERE reason = 'Pulled' AND image NOT LIKE 'registry.corp.example/%'"
q "SELECT user, verb, resource, count(*) AS calls FROM audit GROUP BY 1, 2, 3 ORDER BY calls DESC LIMIT 5"
pod=$("$vigil" sql --data-dir "$store" --format csv "SELECT pod FROM metrics WHERE pod IS NOT NULL LIMIT 1" | tail -1)
q "SELECT kind, count(*) AS rows, min(ts) AS first, max(ts) AS last FROM signals WHERE pod = '$pod' GROUP BY kind ORDER BY kind"
q "EXPLAIN ANALYZE SELECT count(*) FROM signals WHERE pod = '$pod' AND ts < TIMESTAMP '2024-05-01T00:30:00Z'" | grep -o 'VigilScanExec[^]]*]' || true
echo
echo "store: $store"
