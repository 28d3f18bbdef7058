#!/usr/bin/env python3
"""The other engines' side of vigil's benchmarks: DuckDB and chDB (ClickHouse in process),
on the same data vigil-bench used, in the same run. Prints one JSON object per measurement.

    python3 benches/compare.py ingest --file ingest.parquet
    python3 benches/compare.py aggregate --store /tmp/vb
    python3 benches/compare.py compression --file node_metrics.parquet
    python3 benches/compare.py temporal --dir exported/   (from `vigil-bench temporal --export`)
    python3 benches/compare.py plan-floor --dir exported/

Needs `pip install duckdb chdb pyarrow` (and `datafusion` for plan-floor).
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import tempfile
import time

import pyarrow.parquet as pq


def emit(**fields):
    print(json.dumps(fields), flush=True)


def ingest(args):
    import chdb.session
    import duckdb

    table = pq.read_table(args.file)
    batches = table.to_batches(max_chunksize=8192)
    rows = table.num_rows
    for run in range(args.runs):
        tmp = tempfile.mkdtemp()
        try:
            con = duckdb.connect(os.path.join(tmp, "d.duckdb"))
            first = batches[0]
            con.register("b", first)
            con.execute("CREATE TABLE metrics AS SELECT * FROM b LIMIT 0").fetchall()
            con.unregister("b")
            start = time.perf_counter()
            for batch in batches:
                con.register("b", batch)
                con.execute("INSERT INTO metrics SELECT * FROM b").fetchall()  # one committed transaction each
                con.unregister("b")
            con.execute("CHECKPOINT").fetchall()
            elapsed = time.perf_counter() - start
            emit(bench="ingest", engine="duckdb", run=run, rows=rows, rows_per_s=rows / elapsed)
            con.close()

            sess = chdb.session.Session(os.path.join(tmp, "ch"))
            # ClickHouse has no nullable Map: the (all-NULL) attributes column stays out.
            sess.query(
                "CREATE TABLE metrics ENGINE = MergeTree ORDER BY (pod, ts) SETTINGS allow_nullable_key = 1 "
                "AS SELECT * EXCEPT (attributes) FROM file('%s', Parquet) LIMIT 0" % os.path.abspath(args.file)
            )
            plain = [batch.drop_columns(["attributes"]) for batch in batches]
            start = time.perf_counter()
            for batch in plain:
                b = batch  # noqa: F841 (read by chDB's Python() table function)
                sess.query("INSERT INTO metrics SELECT * FROM Python(b)")
            elapsed = time.perf_counter() - start
            emit(bench="ingest", engine="chdb", run=run, rows=rows, rows_per_s=rows / elapsed)
            sess.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


AGG_SQL = (
    "SELECT namespace, date_trunc('minute', ts) AS minute, avg(value) AS avg_value "
    "FROM metrics GROUP BY namespace, date_trunc('minute', ts)"
)
AGG_SQL_CH = (
    "SELECT namespace, toStartOfMinute(ts) AS minute, avg(value) AS avg_value "
    "FROM metrics GROUP BY namespace, minute"
)


def aggregate(args):
    import chdb.session
    import duckdb

    files = sorted(glob.glob(os.path.join(args.store, "segments", "*-metric.parquet")))
    tmp = tempfile.mkdtemp()
    try:
        con = duckdb.connect(os.path.join(tmp, "d.duckdb"))
        # DuckDB's fastest form of the data: a plain (UTC) TIMESTAMP in microseconds; with
        # nanoseconds or time zones its date_trunc is slower or missing.
        con.execute("SET TimeZone = 'UTC'").fetchall()
        con.execute("CREATE TABLE metrics AS SELECT * REPLACE (ts::TIMESTAMPTZ::TIMESTAMP AS ts) FROM read_parquet(?)", [files]).fetchall()
        rows = con.execute("SELECT count(*) FROM metrics").fetchall()[0][0]
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            groups = con.sql(AGG_SQL).to_arrow_table().num_rows
            times.append(time.perf_counter() - start)
        emit(bench="aggregate", engine="duckdb", metric_rows=rows, groups=groups, median_ms=1e3 * statistics.median(times))
        con.close()

        sess = chdb.session.Session(os.path.join(tmp, "ch"))
        pattern = os.path.join(os.path.abspath(args.store), "segments", "*-metric.parquet")
        sess.query(
            "CREATE TABLE metrics ENGINE = MergeTree ORDER BY (namespace, ts) SETTINGS allow_nullable_key = 1 AS "
            "SELECT ts, namespace, pod, name, value FROM file('%s', Parquet)" % pattern
        )
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            res = sess.query(AGG_SQL_CH, "Arrow")
            times.append(time.perf_counter() - start)
        emit(bench="aggregate", engine="chdb", metric_rows=rows, median_ms=1e3 * statistics.median(times))
        sess.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compression(args):
    import duckdb

    rows = pq.ParquetFile(args.file).metadata.num_rows
    tmp = tempfile.mkdtemp()
    try:
        out = os.path.join(tmp, "duckdb_v2_zstd.parquet")
        con = duckdb.connect()
        con.execute(
            "COPY (SELECT * FROM read_parquet(?)) TO '%s' (FORMAT parquet, COMPRESSION zstd, PARQUET_VERSION v2)" % out,
            [args.file],
        )
        size = os.path.getsize(out)
        emit(bench="compression", engine="duckdb-parquet-v2-zstd", samples=rows, bytes=size, bytes_per_sample=size / rows)
        db = os.path.join(tmp, "native.duckdb")
        con = duckdb.connect(db)
        con.execute("CREATE TABLE m AS SELECT * FROM read_parquet(?)", [args.file])
        con.execute("CHECKPOINT")
        con.close()
        size = os.path.getsize(db)
        emit(bench="compression", engine="duckdb-native", samples=rows, bytes=size, bytes_per_sample=size / rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _timed(run, runs):
    """Median and min milliseconds of `runs` calls, the peak memory growth, the last result."""
    times, peak, result = [], 0, None
    for _ in range(runs):
        before = _rss("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
        peak = max(peak, _rss("VmHWM") - before)
    return statistics.median(times), min(times), peak / 1e6, result


PULL = "kind = 'event' AND reason = 'Pulled' AND image NOT LIKE 'registry.corp.example/%'"
HOT = "kind = 'metric' AND name = 'container_cpu_usage_cores' AND value > 0.95"
API = "kind = 'audit' AND resource IN ('secrets', 'pods/exec')"

TEMPORAL_DUCKDB = {
    "asof_audit_to_cpu": "SELECT count(*) AS n, sum(m.value) AS cpu FROM audit a "
    "ASOF JOIN (SELECT pod, ts, value FROM metrics WHERE name = 'container_cpu_usage_cores') m "
    "ON a.pod = m.pod AND a.ts >= m.ts",
    "asof_cpu_to_audit": "SELECT count(*) AS n, count(a.verb) AS matched FROM "
    "(SELECT pod, ts, value FROM metrics WHERE name = 'container_cpu_usage_cores') m "
    "ASOF JOIN (SELECT pod, ts, verb FROM audit) a ON m.pod = a.pod AND m.ts >= a.ts",
    "band_crypto_miner": "SELECT e.namespace, e.pod, e.image, max(m.value) AS peak_cpu "
    "FROM events e JOIN metrics m ON m.pod = e.pod AND m.ts BETWEEN e.ts AND e.ts + INTERVAL '30 minutes' "
    "WHERE e.reason = 'Pulled' AND e.image NOT LIKE 'registry.corp.example/%' "
    "AND m.name = 'container_cpu_usage_cores' AND m.value > 0.9 GROUP BY 1, 2, 3 HAVING count(*) >= 30",
    # DuckDB has no MATCH_RECOGNIZE: the same sequence as joins of the three steps.
    "match_recognize_story": f"""
        WITH pulls AS (SELECT pod, ts, image FROM signals WHERE {PULL}),
             hot AS (SELECT pod, ts FROM signals WHERE {HOT}),
             api AS (SELECT pod, ts, verb, resource FROM signals WHERE {API})
        SELECT p.pod, p.image, min(h.ts) AS hot_at, arg_min(a.verb, a.ts) AS verb,
               arg_min(a.resource, a.ts) AS resource
        FROM pulls p
        JOIN hot h ON h.pod = p.pod AND h.ts > p.ts AND h.ts <= p.ts + INTERVAL '1 hour'
        JOIN api a ON a.pod = p.pod AND a.ts > h.ts AND a.ts <= p.ts + INTERVAL '1 hour'
        GROUP BY p.pod, p.ts, p.image""",
}

TEMPORAL_CHDB = {
    "asof_audit_to_cpu": "SELECT count() AS n, sum(m.value) AS cpu FROM audit a "
    "ASOF JOIN (SELECT pod, ts, value FROM metrics WHERE name = 'container_cpu_usage_cores') m "
    "ON a.pod = m.pod AND a.ts >= m.ts",
    "asof_cpu_to_audit": "SELECT count() AS n, count(a.verb) AS matched FROM "
    "(SELECT pod, ts, value FROM metrics WHERE name = 'container_cpu_usage_cores') m "
    "ASOF JOIN (SELECT pod, ts, verb FROM audit) a ON m.pod = a.pod AND m.ts >= a.ts",
    "band_crypto_miner": "SELECT e.namespace, e.pod, e.image, max(m.value) AS peak_cpu "
    "FROM (SELECT * FROM events WHERE reason = 'Pulled' AND image NOT LIKE 'registry.corp.example/%') e "
    "JOIN (SELECT * FROM metrics WHERE name = 'container_cpu_usage_cores' AND value > 0.9) m ON m.pod = e.pod "
    "WHERE m.ts >= e.ts AND m.ts <= e.ts + INTERVAL 30 MINUTE "
    "GROUP BY 1, 2, 3 HAVING count() >= 30",
    # ClickHouse's sequenceMatch (the one-hour bound is not expressible across three steps).
    "match_recognize_story": f"""
        SELECT pod FROM signals WHERE pod IS NOT NULL GROUP BY pod
        HAVING sequenceMatch('(?1).*(?2).*(?3)')(toDateTime(ts), {PULL}, {HOT}, {API})""",
}


def temporal(args):
    import chdb.session
    import duckdb

    files = {t: os.path.abspath(os.path.join(args.dir, t + ".parquet")) for t in ("audit", "metrics", "events", "signals")}
    con = duckdb.connect()
    for t, f in files.items():
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{f}')")
    for name, sql in TEMPORAL_DUCKDB.items():
        med, best, peak, result = _timed(lambda: con.execute(sql).fetchall(), args.runs)
        emit(bench="temporal", engine="duckdb", query=name, runs=args.runs, median_ms=round(med, 1),
             min_ms=round(best, 1), peak_rss_growth_mb=round(peak, 1), rows=len(result),
             first_row=str(result[0]) if result else "")
    con.close()

    tmp = tempfile.mkdtemp()
    try:
        sess = chdb.session.Session(os.path.join(tmp, "ch"))
        for t, f in files.items():
            sess.query(
                f"CREATE TABLE {t} ENGINE = MergeTree ORDER BY (pod, ts) SETTINGS allow_nullable_key = 1 "
                f"AS SELECT * FROM file('{f}', Parquet)"
            )
        for name, sql in TEMPORAL_CHDB.items():
            med, best, peak, result = _timed(lambda: sess.query(sql, "CSV").bytes().decode(), args.runs)
            lines = [l for l in result.splitlines() if l]
            emit(bench="temporal", engine="chdb", query=name, runs=args.runs, median_ms=round(med, 1),
                 min_ms=round(best, 1), peak_rss_growth_mb=round(peak, 1), rows=len(lines),
                 first_row=lines[0] if lines else "")
        sess.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def plan_floor(args):
    """Plain DataFusion's own planning time (SQL to optimized physical plan) of the band join
    over empty in-memory tables of the same schemas: the part of vigil's band join that no
    execution speed can remove (the PyPI `datafusion` package, the DataFusion major version
    vigil embeds, two partitions like this machine)."""
    import datafusion
    import pyarrow as pa
    from datafusion import SessionConfig, SessionContext

    ctx = SessionContext(SessionConfig().with_target_partitions(2))
    for t in ("metrics", "events"):
        schema = pq.read_schema(os.path.join(args.dir, t + ".parquet"))
        ctx.register_record_batches(t, [[pa.RecordBatch.from_pylist([], schema=schema)]])
    name = "band_crypto_miner"
    sql = TEMPORAL_DUCKDB[name]
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        ctx.sql(sql).execution_plan()
        times.append((time.perf_counter() - start) * 1000)
    emit(bench="plan_floor", engine="datafusion-python " + datafusion.__version__, query=name,
         runs=args.runs, median_ms=round(statistics.median(times), 2), min_ms=round(min(times), 2))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ingest")
    s.add_argument("--file", required=True)
    s.add_argument("--runs", type=int, default=3)
    s = sub.add_parser("aggregate")
    s.add_argument("--store", required=True)
    s.add_argument("--runs", type=int, default=5)
    s = sub.add_parser("compression")
    s.add_argument("--file", required=True)
    s = sub.add_parser("temporal")
    s.add_argument("--dir", required=True)
    s.add_argument("--runs", type=int, default=5)
    s = sub.add_parser("plan-floor")
    s.add_argument("--dir", required=True)
    s.add_argument("--runs", type=int, default=100)
    args = p.parse_args()
    {"plan-floor": plan_floor, "ingest": ingest, "aggregate": aggregate, "compression": compression, "temporal": temporal}[args.cmd](args)


if __name__ == "__main__":
    main()
