//! The data model: the columns every row carries, each kind's own columns, and which of them
//! the segment index covers.
//!
//! Invariant: a column name means the same thing, with the same type, in every kind that has
//! it (`name` of metrics and spans, `trace_id`/`span_id` of logs and spans, `object_name` of
//! audit events and Kubernetes events), so that the union `signals` can share one column.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::kind::SignalKind;

/// The timezone of every `ts` column.
pub const TS_TZ: &str = "UTC";

/// The logical type of a column, mapped to one Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `Timestamp(Nanosecond, "UTC")`.
    Timestamp,
    Utf8,
    Float64,
    Int64,
    Int32,
    /// `List<Utf8>`.
    StringList,
    /// `Map<Utf8, Utf8>`.
    StringMap,
}

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Timestamp => ts_type(),
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::StringList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            ColumnType::StringMap => string_map_type(),
        }
    }

    /// How the type is written in `docs/schema.md`.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Timestamp => "TIMESTAMP(ns, UTC)",
            ColumnType::Utf8 => "VARCHAR",
            ColumnType::Float64 => "DOUBLE",
            ColumnType::Int64 => "BIGINT",
            ColumnType::Int32 => "INT",
            ColumnType::StringList => "LIST<VARCHAR>",
            ColumnType::StringMap => "MAP<VARCHAR, VARCHAR>",
        }
    }
}

/// `Timestamp(Nanosecond, "UTC")`, the type of every `ts`.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(TS_TZ.into()))
}

/// `Map<Utf8, Utf8>` with the field names Arrow's `MapBuilder` uses.
pub fn string_map_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

/// How the segment index covers a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexed {
    No,
    /// A roaring bitmap of 1,024-row blocks per distinct value, per segment (low-cardinality
    /// columns).
    Values,
    /// The pod column: a bitmap of rows per pod id from the persisted pod dictionary.
    Pods,
}

/// One column of the data model.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub ty: ColumnType,
    /// A required column must be present in every written batch and never null.
    pub required: bool,
    pub indexed: Indexed,
    pub doc: &'static str,
}

const fn col(name: &'static str, ty: ColumnType, doc: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        ty,
        required: false,
        indexed: Indexed::No,
        doc,
    }
}

const fn required(mut c: ColumnSpec) -> ColumnSpec {
    c.required = true;
    c
}

const fn indexed(mut c: ColumnSpec) -> ColumnSpec {
    c.indexed = Indexed::Values;
    c
}

use ColumnType::*;

/// Columns every row of every kind carries, in this order, first.
pub const COMMON_COLUMNS: &[ColumnSpec] = &[
    required(col(
        "ts",
        Timestamp,
        "When the signal was observed, nanoseconds since the Unix epoch, UTC.",
    )),
    col(
        "cluster",
        Utf8,
        "Kubernetes cluster name (`k8s.cluster.name`).",
    ),
    indexed(col(
        "namespace",
        Utf8,
        "Namespace of the pod the row belongs to.",
    )),
    ColumnSpec {
        indexed: Indexed::Pods,
        ..col(
            "pod",
            Utf8,
            "Pod name: the first-class identity; segments are sorted by (pod, ts).",
        )
    },
    col("container", Utf8, "Container name within the pod."),
    col("node", Utf8, "Node the pod runs on."),
    col(
        "attributes",
        StringMap,
        "Open key/value map: metric labels, resource and record attributes.",
    ),
];

const METRIC_COLUMNS: &[ColumnSpec] = &[
    required(indexed(col(
        "name",
        Utf8,
        "Metric name, e.g. `container_cpu_usage_cores`.",
    ))),
    required(col("value", Float64, "The sample value.")),
    col(
        "metric_type",
        Utf8,
        "gauge, sum, counter, histogram, exponential_histogram or summary.",
    ),
    col(
        "unit",
        Utf8,
        "Unit of the value (UCUM, as OpenTelemetry sends it).",
    ),
    col(
        "exemplars",
        Utf8,
        "OpenTelemetry exemplars of the point as a JSON array (ts, value, trace_id, span_id, attributes).",
    ),
];

const LOG_COLUMNS: &[ColumnSpec] = &[
    indexed(col(
        "severity",
        Utf8,
        "Severity text: TRACE, DEBUG, INFO, WARN, ERROR, FATAL.",
    )),
    col(
        "severity_number",
        Int32,
        "OpenTelemetry severity number (1-24).",
    ),
    col("body", Utf8, "The log line or message body."),
    col(
        "trace_id",
        Utf8,
        "Trace id (32 hex digits) the record belongs to.",
    ),
    col(
        "span_id",
        Utf8,
        "Span id (16 hex digits) the record belongs to.",
    ),
];

const SPAN_COLUMNS: &[ColumnSpec] = &[
    required(col("trace_id", Utf8, "Trace id (32 hex digits).")),
    required(col("span_id", Utf8, "Span id (16 hex digits).")),
    col(
        "parent_span_id",
        Utf8,
        "Parent span id; null for a root span.",
    ),
    required(col("name", Utf8, "Span name (operation).")),
    col(
        "span_kind",
        Utf8,
        "internal, server, client, producer or consumer.",
    ),
    col(
        "duration_ns",
        Int64,
        "Span duration in nanoseconds; `ts` is the start.",
    ),
    col("status_code", Utf8, "unset, ok or error."),
    col("status_message", Utf8, "Status description."),
    col(
        "peer",
        Utf8,
        "The remote end of a client span: address or service.",
    ),
    col(
        "span_events",
        Utf8,
        "Span events as a JSON array of {ts, name, attributes}.",
    ),
    col(
        "span_links",
        Utf8,
        "Span links as a JSON array of {trace_id, span_id, trace_state, attributes}.",
    ),
];

const AUDIT_COLUMNS: &[ColumnSpec] = &[
    col("audit_id", Utf8, "auditID of the audit.k8s.io/v1 Event."),
    col(
        "stage",
        Utf8,
        "RequestReceived, ResponseStarted, ResponseComplete or Panic.",
    ),
    col("level", Utf8, "Metadata, Request or RequestResponse."),
    required(indexed(col(
        "verb",
        Utf8,
        "get, list, watch, create, update, patch, delete...",
    ))),
    indexed(col(
        "resource",
        Utf8,
        "Resource, with the subresource as RBAC writes it: `secrets`, `pods/exec`.",
    )),
    col("subresource", Utf8, "Subresource alone (`exec`, `log`...)."),
    col(
        "api_group",
        Utf8,
        "API group of the object; empty for the core group.",
    ),
    col(
        "object_namespace",
        Utf8,
        "Namespace of the object acted on (objectRef.namespace).",
    ),
    col(
        "object_name",
        Utf8,
        "Name of the object acted on (objectRef.name).",
    ),
    indexed(col(
        "user",
        Utf8,
        "Username of the caller, e.g. `system:serviceaccount:ns:sa`.",
    )),
    col("groups", StringList, "Groups of the caller."),
    col("source_ips", StringList, "Source IPs of the request."),
    col("user_agent", Utf8, "User agent of the caller."),
    col("response_code", Int32, "HTTP status code of the response."),
    col("decision", Utf8, "Authorization decision: allow or forbid."),
    col(
        "request_object",
        Utf8,
        "The request body as JSON (Request and RequestResponse levels).",
    ),
    col(
        "response_object",
        Utf8,
        "The response body as JSON (RequestResponse level).",
    ),
];

const EVENT_COLUMNS: &[ColumnSpec] = &[
    required(indexed(col(
        "reason",
        Utf8,
        "Event reason: Pulled, Created, Started, BackOff...",
    ))),
    col("event_type", Utf8, "Normal or Warning."),
    col("message", Utf8, "Human-readable message."),
    col(
        "object_kind",
        Utf8,
        "Kind of the involved object (Pod, Node...).",
    ),
    col("object_name", Utf8, "Name of the involved object."),
    col(
        "image",
        Utf8,
        "Container image, for image events such as Pulled.",
    ),
    col(
        "event_count",
        Int32,
        "How many times the event occurred (Event.count).",
    ),
    col(
        "source_component",
        Utf8,
        "Component that reported the event (kubelet...).",
    ),
];

const ROLLUP_COLUMNS: &[ColumnSpec] = &[
    required(indexed(col(
        "name",
        Utf8,
        "Metric name, e.g. `container_cpu_usage_cores`.",
    ))),
    col("metric_type", Utf8, "The metric type of the raw samples."),
    col("unit", Utf8, "Unit of the values."),
    required(col(
        "step_seconds",
        Int64,
        "Length of the bucket in seconds; `ts` is its start (aligned to the Unix epoch).",
    )),
    required(col("min", Float64, "Smallest sample value in the bucket.")),
    required(col("max", Float64, "Largest sample value in the bucket.")),
    required(col(
        "sum",
        Float64,
        "Sum of the sample values in the bucket.",
    )),
    required(col("count", Int64, "Number of samples in the bucket.")),
];

/// The columns of `kind` that follow the common columns.
pub fn kind_columns(kind: SignalKind) -> &'static [ColumnSpec] {
    match kind {
        SignalKind::Metric => METRIC_COLUMNS,
        SignalKind::Log => LOG_COLUMNS,
        SignalKind::Span => SPAN_COLUMNS,
        SignalKind::Audit => AUDIT_COLUMNS,
        SignalKind::Event => EVENT_COLUMNS,
        SignalKind::Rollup => ROLLUP_COLUMNS,
    }
}

/// Every column of `kind`: the common ones, then the kind's own.
pub fn columns(kind: SignalKind) -> impl Iterator<Item = &'static ColumnSpec> {
    COMMON_COLUMNS.iter().chain(kind_columns(kind))
}

/// Finds a column of `kind` by name.
pub fn column(kind: SignalKind, name: &str) -> Option<&'static ColumnSpec> {
    columns(kind).find(|c| c.name == name)
}

fn field(spec: &ColumnSpec) -> Field {
    Field::new(spec.name, spec.ty.data_type(), !spec.required)
}

/// The Arrow schema of one kind: what its SQL table shows and what its segments hold.
pub fn kind_schema(kind: SignalKind) -> SchemaRef {
    static SCHEMAS: OnceLock<BTreeMap<SignalKind, SchemaRef>> = OnceLock::new();
    let map = SCHEMAS.get_or_init(|| {
        SignalKind::STORED
            .into_iter()
            .map(|k| {
                (
                    k,
                    Arc::new(Schema::new(columns(k).map(field).collect::<Vec<_>>())),
                )
            })
            .collect()
    });
    Arc::clone(&map[&kind])
}

/// The name of the column that says which kind a row of `signals` is.
pub const KIND_COLUMN: &str = "kind";

/// The schema of the union `signals`: the common columns, `kind`, then every kind's own
/// columns once, in kind order. Kind columns are nullable here, since other kinds lack them.
pub fn signals_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| {
        let mut fields: Vec<Field> = COMMON_COLUMNS.iter().map(field).collect();
        fields.push(Field::new(KIND_COLUMN, DataType::Utf8, false));
        for kind in SignalKind::ALL {
            for spec in kind_columns(kind) {
                if !fields.iter().any(|f| f.name() == spec.name) {
                    fields.push(Field::new(spec.name, spec.ty.data_type(), true));
                }
            }
        }
        Arc::new(Schema::new(fields))
    }))
}

/// The value-indexed columns of `kind`, in schema order.
pub fn value_indexed_columns(kind: SignalKind) -> impl Iterator<Item = &'static ColumnSpec> {
    columns(kind).filter(|c| c.indexed == Indexed::Values)
}

/// Renders the data model as the Markdown of `docs/schema.md`.
pub fn schema_markdown() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    out.push_str("# vigil's data model\n\n");
    out.push_str(
        "<!-- Generated from model/src/schema/mod.rs by `VIGIL_BLESS=1 cargo test -p vigil-model schema_doc`; do not edit by hand. -->\n\n",
    );
    out.push_str(
        "Every row is one signal of one kind. SQL sees one table per kind and the union `signals`\n\
         (and `pods`, the history of every pod, described in `docs/ingest.md`).\n\
         Required columns must be present and non-null in every written batch; other columns may be\n\
         omitted (they are stored as NULL). Columns marked *value index* have, in every segment, a\n\
         roaring bitmap per distinct value of the 1,024-row blocks holding it; the pod has a bitmap\n\
         of rows per pod id from the pod dictionary.\n\
         Segments are sorted by (`pod`, `ts`), NULL pods last, and every scan declares that order.\n\n",
    );
    let table = |out: &mut String, specs: &mut dyn Iterator<Item = &ColumnSpec>| {
        out.push_str("| column | type | required | index | meaning |\n|---|---|---|---|---|\n");
        for c in specs {
            let index = match c.indexed {
                Indexed::No => "",
                Indexed::Values => "value index",
                Indexed::Pods => "pod index",
            };
            let req = if c.required { "yes" } else { "" };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                c.name,
                c.ty.sql_name(),
                req,
                index,
                c.doc
            );
        }
        out.push('\n');
    };
    out.push_str("## Common columns (every kind)\n\n");
    table(&mut out, &mut COMMON_COLUMNS.iter());
    for kind in SignalKind::ALL {
        let _ = writeln!(
            out,
            "## `{}` (kind `{}`)\n",
            kind.table_name(),
            kind.as_str()
        );
        table(&mut out, &mut kind_columns(kind).iter());
    }
    out.push_str(
        "## `metric_rollups` (kind `rollup`)\n\nDownsampled metrics, written by retention (`docs/retention.md`) before the raw samples\n\
         they summarize are removed; never ingested. Rows per series (every common column, `name`,\n\
         `metric_type`, `unit`) and bucket of `step_seconds` (partial rows when a bucket's samples were in\n\
         several segments). The views `metrics_1m`, `metrics_1h`\n\
         (and one per configured step) combine these rows with the raw samples still kept.\n\n",
    );
    table(&mut out, &mut kind_columns(SignalKind::Rollup).iter());
    out.push_str(
        "## `signals`\n\nThe union of all five tables: the common columns, then `kind` (VARCHAR, the singular\n\
         kind name), then every kind's own columns once, in the order above; a column another kind\n\
         lacks is NULL. Columns shared by name (`name`, `trace_id`, `span_id`, `object_name`) have the\n\
         same type and meaning wherever they appear.\n",
    );
    out
}

#[cfg(test)]
mod tests;
