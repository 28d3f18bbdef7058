#!/usr/bin/env python3
"""Grammar-based SQL fuzzing of a running `vigil serve`, over the HTTP SQL API and Flight SQL.

Generates statements that use vigil's SQL (ASOF joins, band joins, MATCH_RECOGNIZE, gap
filling, the store statements) and plain SQL, valid and broken, and sends them with three
tokens: an admin, an analyst and a token restricted to the `shop` namespace. Checks:

- the server never goes away (every request gets an HTTP answer; Flight calls a status);
- every error is a 4xx with a JSON error, or a clean 5xx (timeout, busy, unavailable,
  memory ceiling); an `internal` 500 is a finding, logged with its statement;
- the restricted token never sees a row of another namespace (every `namespace` and
  `object_namespace` value it gets back is `shop` or NULL);
- on the subset of single-table statements DuckDB runs the same way, vigil's rows equal
  DuckDB's over the same Parquet files (plain differential testing).

Usage (the server and its store from `vigil generate` + `vigil import`; see
docs/reliability.md for the command that starts them):

    python3 benches/fuzz_sql.py --http 127.0.0.1:4318 --grpc 127.0.0.1:4317 \
        --data DIR_OF_PARQUET --admin SECRET --analyst SECRET --shop SECRET \
        --statements 1000000 --seed 1 --out fuzz-report.json
"""

import argparse
import http.client
import json
import math
import random
import sys
import time

TABLES = {
    "metrics": {"num": ["value"], "str": ["namespace", "pod", "name", "node", "container"]},
    "logs": {"num": ["severity_number"], "str": ["namespace", "pod", "severity", "body"]},
    "spans": {"num": ["duration_ns"], "str": ["namespace", "pod", "name", "span_kind", "status_code"]},
    "audit": {"num": ["response_code"],
              "str": ["namespace", "pod", "verb", "resource", "user", "object_namespace"]},
    "events": {"num": ["event_count"], "str": ["namespace", "pod", "reason", "event_type", "message"]},
}
NAMESPACED = ("namespace", "object_namespace")
AGGREGATES = ["count", "sum", "min", "max", "avg"]
STRING_FUNCS = ["lower", "upper", "length", "trim", "reverse"]
INTERNAL_OK = {"timeout", "busy", "unavailable", "memory_ceiling"}


class Gen:
    """Random statements from a small grammar of vigil's SQL."""

    def __init__(self, rng):
        self.r = rng

    def pick(self, xs):
        return self.r.choice(xs)

    def literal(self, kind):
        r = self.r.random()
        if kind == "num":
            if r < 0.05:
                return "NULL"
            if r < 0.1:
                return self.pick(["9223372036854775807", "-9223372036854775808", "1e308",
                                  "CAST('NaN' AS DOUBLE)", "0"])
            return str(round(self.r.uniform(-10, 1000), self.r.randint(0, 3)))
        if r < 0.05:
            return "NULL"
        return "'" + self.pick(["shop", "payments", "web-1", "cpu", "get", "secrets", "Pulled",
                                "kube-system", "", "x'' OR ''1''=''1", "%", "é"]) + "'"

    def column(self, table, kind, alias=None):
        col = self.pick(TABLES[table][kind])
        return f"{alias}.{col}" if alias else col

    def num_expr(self, table, depth=0, alias=None):
        r = self.r.random()
        if depth > 3 or r < 0.4:
            return self.column(table, "num", alias)
        if r < 0.55:
            return self.literal("num")
        if r < 0.75:
            op = self.pick(["+", "-", "*"])
            return f"({self.num_expr(table, depth + 1, alias)} {op} {self.num_expr(table, depth + 1, alias)})"
        if r < 0.85:
            return f"abs({self.num_expr(table, depth + 1, alias)})"
        if r < 0.92:
            return f"length({self.str_expr(table, depth + 1, alias)})"
        return f"CASE WHEN {self.predicate(table, depth + 1, alias)} THEN {self.num_expr(table, depth + 1, alias)} ELSE {self.literal('num')} END"

    def str_expr(self, table, depth=0, alias=None):
        r = self.r.random()
        if depth > 3 or r < 0.5:
            return self.column(table, "str", alias)
        if r < 0.65:
            return self.literal("str")
        if r < 0.8:
            return f"{self.pick(['lower', 'upper', 'trim', 'reverse'])}({self.str_expr(table, depth + 1, alias)})"
        if r < 0.9:
            return f"coalesce({self.str_expr(table, depth + 1, alias)}, {self.literal('str')})"
        # Growing functions, with arguments that may be huge.
        n = self.pick(["3", "100", "1000000", "2147483647", "-1"])
        return f"{self.pick(['repeat', 'lpad', 'rpad'])}({self.str_expr(table, depth + 1, alias)}, {n})"

    def predicate(self, table, depth=0, alias=None):
        r = self.r.random()
        if depth > 3 or r < 0.35:
            op = self.pick(["=", "<>", "<", ">=", ">"])
            return f"{self.num_expr(table, depth + 1, alias)} {op} {self.literal('num')}"
        if r < 0.55:
            op = self.pick(["=", "<>", "LIKE"])
            return f"{self.str_expr(table, depth + 1, alias)} {op} {self.literal('str')}"
        if r < 0.65:
            items = ", ".join(self.literal("str") for _ in range(self.r.randint(1, 6)))
            return f"{self.column(table, 'str', alias)} IN ({items})"
        if r < 0.72:
            return f"{self.column(table, self.pick(['num', 'str']), alias)} IS {self.pick(['', 'NOT '])}NULL"
        if r < 0.78:
            # Long chains, as dashboards write them.
            n = self.r.randint(2, 300)
            col = self.column(table, "str", alias)
            return "(" + " OR ".join(f"{col} = 'p{i}'" for i in range(n)) + ")"
        if r < 0.9:
            return f"({self.predicate(table, depth + 1, alias)} {self.pick(['AND', 'OR'])} {self.predicate(table, depth + 1, alias)})"
        return f"NOT ({self.predicate(table, depth + 1, alias)})"

    def simple_select(self):
        """Single-table statements whose meaning DuckDB shares: (sql, comparable)."""
        table = self.pick(list(TABLES))
        where = f" WHERE {self.predicate(table)}" if self.r.random() < 0.7 else ""
        if self.r.random() < 0.5:
            group = self.column(table, "str")
            agg = self.pick(AGGREGATES)
            arg = "*" if agg == "count" and self.r.random() < 0.5 else self.column(table, "num")
            sql = (f"SELECT {group} AS g, {agg}({arg}) AS a FROM {table}{where} "
                   f"GROUP BY {group}")
        else:
            cols = [self.column(table, self.pick(["num", "str"])) for _ in range(self.r.randint(1, 3))]
            cols = list(dict.fromkeys(cols))
            sql = f"SELECT {', '.join(cols)} FROM {table}{where} LIMIT {self.r.randint(0, 50) * 0 + 1000}"
        comparable = "repeat(" not in sql and "lpad(" not in sql and "rpad(" not in sql \
            and "NaN" not in sql and "1e308" not in sql and "9223372036854775807" not in sql \
            and "-9223372036854775808" not in sql and "reverse(" not in sql and "LIMIT" not in sql \
            and "avg(" not in sql
        return sql, comparable

    def temporal(self):
        r = self.r.random()
        if r < 0.25:
            return ("SELECT m.pod, m.value, l.body FROM metrics m ASOF JOIN logs l "
                    "ON m.pod = l.pod AND m.ts >= l.ts WHERE " + self.predicate("metrics", alias="m")
                    + f" LIMIT {self.r.randint(1, 100)}")
        if r < 0.5:
            w = self.pick(["1 minute", "30 seconds", "5 minutes", "0 seconds"])
            return ("SELECT a.pod, count(*) AS n FROM audit a JOIN events e ON a.pod = e.pod "
                    f"AND e.ts BETWEEN a.ts - INTERVAL '{w}' AND a.ts + INTERVAL '{w}' GROUP BY a.pod")
        if r < 0.75:
            step = self.pick(["1 minute", "10 seconds", "1 hour"])
            fill = self.pick(["locf(avg(value))", "interpolate(avg(value))", "avg(value)"])
            return (f"SELECT time_bucket_gapfill(INTERVAL '{step}', ts) AS t, pod, {fill} AS v "
                    "FROM metrics WHERE ts >= TIMESTAMP '2024-05-01T00:00:00Z' AND ts < "
                    "TIMESTAMP '2024-05-01T00:20:00Z' AND name = 'container_cpu_usage_cores' "
                    "GROUP BY 1, 2 ORDER BY 2, 1 LIMIT 500")
        pattern = self.pick(["A B+ C", "A+ B", "(A | B)* C", "A{2,5}", "A B? C*"])
        return ("SELECT * FROM metrics MATCH_RECOGNIZE (PARTITION BY pod ORDER BY ts "
                "MEASURES FIRST(A.ts) AS start_ts, COUNT(*) AS n ONE ROW PER MATCH "
                f"AFTER MATCH SKIP PAST LAST ROW PATTERN ({pattern}) DEFINE A AS value > "
                f"{self.literal('num')}, B AS value <= PREV(value), C AS value > PREV(value)) LIMIT 100")

    def store_statement(self):
        return self.pick(["SHOW RETENTION", "SHOW HOLDS", "FLUSH", "COMPACT", "ENFORCE RETENTION",
                          "SELECT * FROM retention_rules", "SELECT * FROM pods LIMIT 20",
                          "SELECT kind, count(*) FROM signals GROUP BY kind",
                          "EXPLAIN SELECT count(*) FROM metrics WHERE pod = 'web-1'",
                          "SELECT * FROM metrics_1m LIMIT 10", "DESCRIBE metrics",
                          "SELECT * FROM information_schema.tables"])

    def broken(self, sql):
        r = self.r.random()
        if r < 0.3:
            return sql[: self.r.randint(0, len(sql))]
        if r < 0.5:
            i = self.r.randint(0, len(sql))
            return sql[:i] + self.pick([")", "(", "'", ",", " FROM ", " JOIN ", ";", "\\", "\x00",
                                         " MATCH_RECOGNIZE (", " ASOF ", "--", "/*"]) + sql[i:]
        if r < 0.65:
            depth = self.pick([10, 200, 300, 5000])
            return "SELECT " + "(" * depth + "1" + ")" * depth
        if r < 0.8:
            return "SELECT " + " - ".join(["1"] * self.pick([10, 1000, 20000]))
        return self.pick(["INSERT INTO metrics VALUES (1)", "DROP TABLE metrics",
                          "COPY metrics TO '/tmp/x.parquet'", "SET datafusion.execution.batch_size = 1",
                          "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                          "SELECT * FROM metrics a, metrics b, metrics c"])

    def statement(self):
        r = self.r.random()
        if r < 0.45:
            sql, comparable = self.simple_select()
            return sql, comparable
        if r < 0.7:
            return self.temporal(), False
        if r < 0.8:
            return self.store_statement(), False
        base = self.simple_select()[0] if self.r.random() < 0.5 else self.temporal()
        return self.broken(base), False


class Http:
    def __init__(self, addr):
        self.addr = addr

    def sql(self, secret, statement, limit=1000):
        host, port = self.addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        body = json.dumps({"sql": statement, "limit": limit})
        conn.request("POST", "/api/v1/sql", body=body, headers={
            "Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        return resp.status, payload, data


def rows_of(payload):
    cols = [c["name"] for c in payload.get("columns", [])]
    return cols, payload.get("rows", [])


def normalise(rows):
    out = []
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if isinstance(v, float):
                if math.isnan(v):
                    cells.append("NaN")
                else:
                    # Sums in a different order differ in their last bits: 9 significant
                    # digits compare.
                    cells.append(float(f"{v:.9g}"))
            elif v in ("NaN", "Infinity", "-Infinity"):
                cells.append(v)
            else:
                cells.append(v)
        out.append(tuple(cells))
    return sorted(out, key=repr)


def duckdb_rows(con, sql):
    try:
        result = con.execute(sql).fetchall()
    except Exception:
        return None
    rows = []
    for row in result:
        rows.append([float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                     for v in row])
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True)
    ap.add_argument("--grpc")
    ap.add_argument("--data", required=True, help="the Parquet files the store was imported from")
    ap.add_argument("--admin", required=True)
    ap.add_argument("--analyst", required=True)
    ap.add_argument("--shop", required=True)
    ap.add_argument("--statements", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=float("inf"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flight-every", type=int, default=10)
    ap.add_argument("--out", default="fuzz-report.json")
    args = ap.parse_args()

    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table, file in [("metrics", "metrics"), ("logs", "logs"), ("spans", "spans"),
                        ("audit", "audit"), ("events", "events")]:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{args.data}/{file}.parquet')")

    flight = None
    if args.grpc:
        import adbc_driver_flightsql.dbapi as flight_sql
        flight = flight_sql.connect(f"grpc://{args.grpc}", db_kwargs={
            "adbc.flight.sql.authorization_header": f"Bearer {args.analyst}"})

    rng = random.Random(args.seed)
    gen = Gen(rng)
    http_api = Http(args.http)
    counts = {"statements": 0, "ok": 0, "client_errors": 0, "clean_5xx": 0, "flight": 0,
              "flight_errors": 0, "compared": 0, "restricted_checked": 0}
    findings = []
    started = time.time()
    tokens = [("admin", args.admin), ("analyst", args.analyst), ("shop", args.shop)]
    while counts["statements"] < args.statements and time.time() - started < args.seconds:
        sql, comparable = gen.statement()
        who, secret = rng.choice(tokens)
        counts["statements"] += 1
        if counts["statements"] % 1000 == 0:
            rate = counts["statements"] / (time.time() - started)
            print(f"{counts['statements']} statements, {rate:.0f}/s, {len(findings)} findings",
                  file=sys.stderr, flush=True)
        if flight is not None and counts["statements"] % args.flight_every == 1:
            counts["flight"] += 1
            try:
                cur = flight.cursor()
                cur.execute(sql)
                cur.fetchall()
                cur.close()
            except Exception as e:  # refused statements come back as errors
                counts["flight_errors"] += 1
                text = str(e)
                if "INTERNAL" in text and "panicked" in text:
                    findings.append({"kind": "flight_internal", "sql": sql, "error": text[:500]})
            continue
        try:
            status, payload, raw = http_api.sql(secret, sql)
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            findings.append({"kind": "no_answer", "sql": sql, "error": str(e)})
            print(f"server gave no answer: {e}\n{sql[:300]}", file=sys.stderr)
            break
        if status == 200:
            counts["ok"] += 1
            cols, rows = rows_of(payload)
            if who == "shop":
                counts["restricted_checked"] += 1
                for i, c in enumerate(cols):
                    if c.split(".")[-1] in NAMESPACED:
                        bad = {r[i] for r in rows if r[i] not in (None, "shop")}
                        if bad:
                            findings.append({"kind": "wrong_namespace", "sql": sql,
                                             "values": sorted(map(str, bad))[:5]})
            if comparable and who != "shop":
                theirs = duckdb_rows(con, sql)
                if theirs is not None:
                    counts["compared"] += 1
                    if normalise(rows) != normalise(theirs):
                        findings.append({"kind": "differs_from_duckdb", "sql": sql,
                                         "vigil": normalise(rows)[:5], "duckdb": normalise(theirs)[:5]})
        elif 400 <= status < 500:
            if not (payload and "error" in payload):
                findings.append({"kind": "unclear_4xx", "sql": sql, "status": status,
                                 "body": raw[:300].decode("utf-8", "replace")})
            counts["client_errors"] += 1
        else:
            code = (payload or {}).get("error", {}).get("code")
            if code in INTERNAL_OK:
                counts["clean_5xx"] += 1
            else:
                findings.append({"kind": "internal", "sql": sql, "status": status,
                                 "body": raw[:500].decode("utf-8", "replace")})
    counts["seconds"] = round(time.time() - started, 1)
    report = {"seed": args.seed, "counts": counts, "findings": findings[:200],
              "findings_total": len(findings)}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(counts))
    kinds = {}
    for f_ in findings:
        kinds[f_["kind"]] = kinds.get(f_["kind"], 0) + 1
    print(json.dumps(kinds))
    return 1 if any(f_["kind"] in ("no_answer", "wrong_namespace") for f_ in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
