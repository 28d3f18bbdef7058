"""Talks to a running `vigil serve` with ADBC's Flight SQL driver (adbc-driver-flightsql from
PyPI, the Go driver behind the ADBC C API): a handshake with user and password, queries,
a prepared statement with parameters, the catalog calls, and a namespace-scoped token.

Usage: flight_sql_adbc.py GRPC_ADDR QUERY_TOKEN SCOPED_TOKEN
Prints one JSON object with what it saw.
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager

grpc_addr, query_token, scoped_token = sys.argv[1], sys.argv[2], sys.argv[3]
uri = f"grpc://{grpc_addr}"
out = {}

# Basic auth: the driver sends user:password in a handshake and uses the bearer it gets back.
with flight_sql.connect(
    uri, db_kwargs={"username": "analyst", "password": query_token}
) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM metrics")
        out["metrics"] = cur.fetchone()[0]
        cur.execute(
            "SELECT namespace, count(*) AS n FROM metrics GROUP BY namespace ORDER BY namespace"
        )
        table = cur.fetch_arrow_table()
        out["by_namespace"] = dict(
            zip(table.column("namespace").to_pylist(), table.column("n").to_pylist())
        )
        out["by_namespace_types"] = [str(t) for t in table.schema.types]
        # A prepared statement, bound twice.
        sql = "SELECT count(*) FROM metrics WHERE namespace = $1"
        out["prepared"] = {}
        for ns in ("shop", "monitoring"):
            cur.execute(sql, parameters=(ns,))
            out["prepared"][ns] = cur.fetchone()[0]
        # The brief's temporal SQL.
        cur.execute(
            "SELECT count(*) FROM audit a ASOF JOIN metrics m "
            "MATCH_CONDITION (a.ts >= m.ts) ON a.pod = m.pod"
        )
        out["asof_rows"] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM audit")
        out["audit"] = cur.fetchone()[0]
        # Writes are refused to a query token.
        try:
            cur.execute("COPY (SELECT 1) TO '/tmp/adbc-stolen.csv'")
            out["copy"] = "allowed"
        except adbc_driver_manager.Error as e:
            out["copy"] = type(e).__name__ + ": " + str(e)
        try:
            cur.execute("SELEC 1")
            out["bad_sql"] = "accepted"
        except adbc_driver_manager.Error as e:
            out["bad_sql"] = type(e).__name__ + ": " + str(e)

    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    tables = []
    for catalog in objects:
        for schema in catalog["catalog_db_schemas"] or []:
            for t in schema["db_schema_tables"] or []:
                if schema["db_schema_name"] == "public":
                    tables.append(
                        {
                            "catalog": catalog["catalog_name"],
                            "table": t["table_name"],
                            "type": t["table_type"],
                            "columns": [c["column_name"] for c in t["table_columns"] or []],
                        }
                    )
    out["tables"] = sorted(tables, key=lambda t: t["table"])
    out["metrics_schema"] = conn.adbc_get_table_schema("metrics").names
    out["table_types"] = sorted(conn.adbc_get_table_types())
    info = conn.adbc_get_info()
    out["vendor"] = info.get("vendor_name")

# A namespace-scoped token, sent as a bearer header.
with flight_sql.connect(
    uri,
    db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {scoped_token}"},
) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT namespace FROM signals ORDER BY namespace")
        out["scoped_namespaces"] = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT count(*) FROM metrics")
        out["scoped_metrics"] = cur.fetchone()[0]

# A wrong password.
try:
    with flight_sql.connect(uri, db_kwargs={"username": "x", "password": "wrong"}) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
    out["wrong_password"] = "accepted"
except adbc_driver_manager.Error as e:
    out["wrong_password"] = type(e).__name__ + ": " + str(e)

print(json.dumps(out))
