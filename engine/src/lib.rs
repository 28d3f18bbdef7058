//! # vigil, embedded
//!
//! vigil keeps metrics, logs, traces, Kubernetes audit events and Kubernetes events in one
//! columnar, pod-indexed store, and answers SQL over them. This crate is the whole database
//! as a library: [`Db::open`] a directory, [`Db::write`] Arrow record batches of a
//! [`SignalKind`], and run SQL with [`Db::sql`] or [`Db::query`].
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
//! use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
//! use vigil::{Db, SignalKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let db = Db::open(dir.path())?;
//!
//! // A batch of CPU samples of two pods: columns are matched by name.
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
//!     Field::new("namespace", DataType::Utf8, true),
//!     Field::new("pod", DataType::Utf8, true),
//!     Field::new("name", DataType::Utf8, false),
//!     Field::new("value", DataType::Float64, false),
//! ]));
//! let t0 = 1_700_000_000_000_000_000i64;
//! let batch = RecordBatch::try_new(schema, vec![
//!     Arc::new(TimestampNanosecondArray::from(vec![t0, t0, t0 + 10_000_000_000]).with_timezone("UTC")),
//!     Arc::new(StringArray::from(vec!["shop", "shop", "shop"])),
//!     Arc::new(StringArray::from(vec!["web-1", "miner-7", "miner-7"])),
//!     Arc::new(StringArray::from(vec!["container_cpu_usage_cores"; 3])),
//!     Arc::new(Float64Array::from(vec![0.2, 0.97, 0.99])),
//! ])?;
//! db.write(SignalKind::Metric, &batch)?; // durable (fsynced) when this returns
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! let rows = rt.block_on(db.query(
//!     "SELECT pod, max(value) AS peak FROM metrics WHERE value > 0.9 GROUP BY pod",
//! ))?;
//! let text = arrow::util::pretty::pretty_format_batches(&rows)?.to_string();
//! assert!(text.contains("miner-7") && text.contains("0.99"));
//! assert!(!text.contains("web-1"));
//! db.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! Tables: `metrics`, `logs`, `spans`, `audit`, `events` (one per kind), `signals` (all of
//! them, with a `kind` column), `pods` (the history of every pod heard of), `metric_rollups`
//! and the views `metrics_1m`, `metrics_1h` (downsampled metrics, `docs/retention.md`), and
//! `retention_rules`/`retention_holds`. Every scan prunes segments by time, pod and indexed
//! columns and returns rows in (pod, ts) order per partition.

mod db;
pub mod error;
mod memory;
pub mod options;
pub mod session;
pub mod table;
pub mod write;

pub use db::{Db, StoreStats};
pub use error::{EngineError, Result};
pub use memory::QueryMemory;
pub use options::DbOptions;
pub use session::{Access, Planned, QueryLimits, Session, StoreCommand};
pub use table::Visibility;
pub use vigil_model::{BatchBuilder, ModelError, PodObservation, SignalKind, schema, series, time};
pub use vigil_query::interrupt::{Interrupt, Interrupted};
pub use vigil_query::{QueryError, SessionOptions};
pub use vigil_storage::retention;
pub use vigil_storage::{
    Clock, CompactionStats, Durability, FlushStats, Hold, HoldRequest, ManualClock, PodVersion,
    RetentionOptions, RetentionPolicy, RetentionReport, RetentionRule, SegmentLayout, StorageError,
    StoreOptions, SystemClock, WriteReceipt,
};
pub use write::{CommittedWrite, LoggedWrite, WriteLog, WriteObserver, WritePath};
