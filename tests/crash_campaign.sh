#!/usr/bin/env bash
# The crash test at scale: ROUNDS (default 1000) rounds of SIGKILL at random moments, plus
# every named crash point, of a child writing in sync mode with flushes, compactions and
# retention passes running; after each round every acknowledged batch must be in the store
# exactly once. CI runs 24 rounds (`cargo nextest run -p vigil-tests crash`); this is the
# long run whose result docs/reliability.md records.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil-target}"
rounds="${1:-1000}"
started=$(date +%s)
VIGIL_CRASH_ROUNDS="$rounds" cargo nextest run -p vigil-tests --no-capture \
    -E "test(acknowledged_writes_survive_sigkill_and_crash_points_exactly_once)"
echo "$rounds SIGKILL rounds passed in $(( $(date +%s) - started )) s"
