//! Helpers shared by vigil's workspace-level tests and the crash-test child process.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

/// 2023-11-14T22:13:20Z, the start of every synthetic test series.
pub const T0: i64 = 1_700_000_000_000_000_000;

/// Rows of the crash test's batch `id`: a pure function of the id, so a reader can tell a
/// whole batch from a partial one without having seen it acknowledged.
pub fn crash_batch_rows(id: u64) -> usize {
    1 + (id.wrapping_mul(2_654_435_761) % 300) as usize
}

/// A metric batch whose every row carries `value = id`, spread over a few pods.
pub fn crash_batch(id: u64) -> RecordBatch {
    let rows = crash_batch_rows(id);
    let ts: Vec<i64> = (0..rows)
        .map(|i| T0 + (id as i64 % 5_000) * 1_000_000_000 + i as i64)
        .collect();
    let pods: Vec<String> = (0..rows)
        .map(|i| format!("pod-{}", (id as usize + i) % 37))
        .collect();
    metric_batch(
        ts,
        vec!["crash".to_string(); rows],
        pods,
        vec!["crash_test_batch".to_string(); rows],
        vec![id as f64; rows],
    )
}

/// A metric batch from columns of equal length.
pub fn metric_batch(
    ts: Vec<i64>,
    namespaces: Vec<String>,
    pods: Vec<String>,
    names: Vec<String>,
    values: Vec<f64>,
) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("namespace", DataType::Utf8, true),
        Field::new("pod", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringArray::from(namespaces)),
            Arc::new(StringArray::from(pods)),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(values)),
        ],
    )
    .expect("a valid batch")
}

/// The retention rules of the retention tests: metrics raw for 3 days, then 1-minute
/// rollups to 6 days and hourly ones to 9; shop's `http_*` metrics raw for 8 days; logs 2
/// days (web: 5); audit a year.
pub const RETENTION_RULES: &str = r#"
[[rules]]
kind = "metrics"
keep = "3d"
downsample = [{ step = "1m", keep = "6d" }, { step = "1h", keep = "9d" }]

[[rules]]
kind = "metrics"
namespace = "shop"
metric = "http_*"
keep = "8d"

[[rules]]
kind = "logs"
keep = "2d"

[[rules]]
kind = "logs"
namespace = "web"
keep = "5d"

[[rules]]
kind = "audit"
keep = "365d"
"#;

/// [`RETENTION_RULES`], parsed.
pub fn retention_policy() -> vigil_storage::RetentionPolicy {
    #[derive(serde::Deserialize)]
    struct File {
        rules: Vec<vigil_storage::retention::RuleSpec>,
    }
    let file: File = toml::from_str(RETENTION_RULES).expect("the test rules are TOML");
    vigil_storage::RetentionPolicy::from_specs(&file.rules).expect("the test rules are valid")
}
