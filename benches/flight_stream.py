"""Throughput of a Flight SQL result stream: `SELECT * FROM metrics LIMIT N` from a running
`vigil serve` through ADBC's Flight SQL driver, against pyarrow reading the same rows from
DuckDB (in process, from a table holding exactly those rows), in the same run.

    python3 benches/flight_stream.py --vigil target/release/vigil --data-dir STORE --rows 10000000

Prints one JSON line per engine: rows, seconds (median of --runs), rows/s and MB/s (Arrow
bytes of the result).
"""
import argparse
import json
import socket
import statistics
import subprocess
import time

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import pyarrow as pa
import pyarrow.flight as flight


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("vigil serve did not start")


def _field(number, payload):
    """One length-delimited protobuf field."""
    tag = bytes([(number << 3) | 2])
    n, size = len(payload), b""
    while True:
        byte = n & 0x7F
        n >>= 7
        size += bytes([byte | (0x80 if n else 0)])
        if not n:
            return tag + size + payload


def statement_query(sql):
    """Flight SQL's CommandStatementQuery{query} packed in a google.protobuf.Any."""
    command = _field(1, sql.encode())
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return _field(1, type_url) + _field(2, command)


def drain(reader):
    rows = 0
    nbytes = 0
    for batch in reader:
        rows += batch.num_rows
        nbytes += batch.nbytes
    return rows, nbytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    grpc, http = free_port(), free_port()
    server = subprocess.Popen(
        [args.vigil, "serve", "--data-dir", args.data_dir,
         "--grpc-addr", f"127.0.0.1:{grpc}", "--http-addr", f"127.0.0.1:{http}"],
        stdout=subprocess.DEVNULL,
        env={"VIGIL_LOG": "warn"},
    )
    try:
        wait_for(grpc)
        wait_for(http)
        sql = f"SELECT * FROM metrics LIMIT {args.rows}"
        results = {}
        with flight_sql.connect(f"grpc://127.0.0.1:{grpc}") as conn:
            times = []
            for _ in range(args.runs):
                with conn.cursor() as cur:
                    t = time.perf_counter()
                    cur.execute(sql)
                    rows, nbytes = drain(cur.fetch_record_batch())
                    times.append(time.perf_counter() - t)
            results["vigil_flight_sql_adbc"] = (rows, nbytes, times)
        # The same statement through pyarrow's own (C++) Flight client: GetFlightInfo with the
        # Flight SQL command, then DoGet of its ticket.
        client = flight.FlightClient(f"grpc://127.0.0.1:{grpc}")
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_query(sql)))
            rows = nbytes = 0
            for endpoint in info.endpoints:
                r, b = drain(client.do_get(endpoint.ticket).to_reader())
                rows, nbytes = rows + r, nbytes + b
            times.append(time.perf_counter() - t)
        results["vigil_flight_sql_pyarrow"] = (rows, nbytes, times)
        # The same rows, for DuckDB.
        table = client.do_get(info.endpoints[0].ticket).read_all()
        db = duckdb.connect()
        db.register("source", table)
        db.execute("CREATE TABLE metrics AS SELECT * FROM source")
        db.unregister("source")
        del table
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            # DuckDB 2: a relation's to_arrow_reader streams without the DB-API result's
            # extra copy; older versions: fetch_record_batch.
            relation = db.sql("SELECT * FROM metrics")
            if hasattr(relation, "to_arrow_reader"):
                reader = relation.to_arrow_reader(65536)
            else:
                reader = db.execute("SELECT * FROM metrics").fetch_record_batch(65536)
            rows, nbytes = drain(reader)
            times.append(time.perf_counter() - t)
        results["duckdb_to_pyarrow"] = (rows, nbytes, times)
        for engine, (rows, nbytes, times) in results.items():
            median = statistics.median(times)
            print(json.dumps({
                "bench": "flight_stream",
                "engine": engine,
                "rows": rows,
                "arrow_bytes": nbytes,
                "seconds_median": round(median, 3),
                "seconds_all": [round(t, 3) for t in times],
                "rows_per_s": round(rows / median),
                "mb_per_s": round(nbytes / median / 1e6, 1),
            }))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
