#!/usr/bin/env python3
"""The other engines' side of vigil's benchmarks: DuckDB and chDB (ClickHouse in process),
on the same data vigil-bench used, in the same run. Prints one JSON object per measurement.

    python3 benches/compare.py ingest --file ingest.parquet
    python3 benches/compare.py aggregate --store /tmp/vb
    python3 benches/compare.py compression --file node_metrics.parquet

Needs `pip install duckdb chdb pyarrow`.
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
    args = p.parse_args()
    {"ingest": ingest, "aggregate": aggregate, "compression": compression}[args.cmd](args)


if __name__ == "__main__":
    main()
