#!/usr/bin/env python3
"""Mutation fuzzing of `vigil import`: real files (generated Parquet, CSV and NDJSON, and
Kubernetes audit logs), with bytes flipped, runs cut out or repeated, and files truncated,
imported one at a time into one store. Checks that every import ends with exit 0 or 1 (never
a panic, exit 101, or a signal), that a rejected file leaves the store's row count as it
was (all or nothing per file), and that an accepted one adds rows.

Usage:
    vigil generate --out DIR --pods 20 --hours 0.1             # Parquet
    vigil generate --out DIR --pods 20 --hours 0.1 --format ndjson
    python3 benches/fuzz_import.py --vigil target/debug/vigil --seeds DIR --audit-logs \\
        ../shared/corpora/k8s-audit --files 2000 --seed 1 --out import-report.json
"""

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import time

KIND_OF = {"metrics": "metric", "logs": "log", "spans": "span", "audit": "audit",
           "events": "event"}


def count(vigil, store, table):
    out = subprocess.run([vigil, "sql", "--data-dir", store, "--format", "csv",
                          f"SELECT count(*) AS n FROM {table}"], capture_output=True, text=True)
    if out.returncode != 0:
        return 0
    return int(out.stdout.splitlines()[1])


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        choice = rng.random()
        at = rng.randrange(len(data))
        if choice < 0.4:
            for i in range(at, min(len(data), at + rng.randint(1, 32))):
                data[i] ^= rng.randint(1, 255)
        elif choice < 0.6:
            del data[at:at + rng.randint(1, 256)]
        elif choice < 0.75:
            piece = data[at:at + rng.randint(1, 256)]
            data[at:at] = piece * rng.randint(1, 4)
        elif choice < 0.9:
            del data[at:]
        else:
            data[at:at] = rng.choice([b"\x00", b"\xff\xfe", b"\"", b",", b"\n", b"{", b"}",
                                      b"NaN", b"99999999999999999999", b"\xef\xbb\xbf"])
    return bytes(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--seeds", required=True, nargs="+", help="directories of generated files")
    ap.add_argument("--audit-logs", nargs="*", default=[])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=float("inf"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="import-report.json")
    args = ap.parse_args()

    seeds = []
    for d in args.seeds:
        for path in sorted(glob.glob(os.path.join(d, "*"))):
            name, ext = os.path.splitext(os.path.basename(path))
            if name in KIND_OF and ext in (".parquet", ".csv", ".ndjson"):
                seeds.append((path, KIND_OF[name], name, ext, None))
    for d in args.audit_logs:
        for path in sorted(glob.glob(os.path.join(d, "**", "*.log"), recursive=True)
                           + glob.glob(os.path.join(d, "**", "*.jsonl"), recursive=True)):
            seeds.append((path, "audit", "audit", ".log", "k8s-audit"))
    if not seeds:
        sys.exit("no seed files")
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="vigil-import-fuzz-")
    store = os.path.join(work, "store")
    counts = {"files": 0, "accepted": 0, "rejected": 0}
    findings = []
    started = time.time()
    while counts["files"] < args.files and time.time() - started < args.seconds:
        path, kind, table, ext, fmt = rng.choice(seeds)
        with open(path, "rb") as f:
            data = mutate(rng, f.read())
        target = os.path.join(work, f"input{ext}")
        with open(target, "wb") as f:
            f.write(data)
        before = count(args.vigil, store, table)
        cmd = [args.vigil, "import", "--data-dir", store, "--kind", kind, target]
        if fmt:
            cmd += ["--format", fmt]
        run = subprocess.run(cmd, capture_output=True, text=True)
        after = count(args.vigil, store, table)
        counts["files"] += 1
        kept = os.path.join(work, f"finding-{counts['files']}{ext}")
        if run.returncode not in (0, 1) or "panicked" in run.stderr:
            with open(kept, "wb") as f:
                f.write(data)
            findings.append({"kind": "crash", "seed": path, "exit": run.returncode,
                             "stderr": run.stderr[-500:], "input": kept})
        elif run.returncode == 1:
            counts["rejected"] += 1
            if after != before:
                with open(kept, "wb") as f:
                    f.write(data)
                findings.append({"kind": "half_accepted", "seed": path, "before": before,
                                 "after": after, "input": kept, "stderr": run.stderr[-300:]})
        else:
            counts["accepted"] += 1
            if after < before:
                findings.append({"kind": "rows_lost", "seed": path, "before": before,
                                 "after": after})
        if counts["files"] % 100 == 0:
            print(f"{counts['files']} files, {len(findings)} findings", file=sys.stderr,
                  flush=True)
    counts["seconds"] = round(time.time() - started, 1)
    with open(args.out, "w") as f:
        json.dump({"seed": args.seed, "counts": counts, "findings": findings}, f, indent=1)
    print(json.dumps(counts), json.dumps({"findings": len(findings)}))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
