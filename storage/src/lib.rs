//! `vigil-storage`: the durable, pod-indexed columnar store under vigil.
//!
//! Rows of five signal kinds ([`SignalKind`]) arrive as Arrow record batches. A write is
//! validated against its kind's schema ([`schema`]), made durable in RocksDB (the WAL of hot
//! rows) and published before it is acknowledged. In the background, hot rows are flushed
//! into immutable Parquet segments sorted by (pod, ts), each with roaring-bitmap indexes of
//! its pods and low-cardinality columns, recorded in a manifest that changes atomically; small
//! segments are compacted, and [`retention`] removes or downsamples what its policy no longer
//! keeps. Readers take a [`Version`] and prune segments and rows with
//! [`prune::prune_segments`]. This crate knows nothing of SQL.

pub mod clock;
mod codec;
pub mod error;
mod failpoints;
mod kv;
pub mod options;
pub mod pod_history;
pub mod pods;
pub mod prune;
pub mod retention;
pub mod segment;
pub(crate) mod store;
pub mod validate;
pub mod version;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Result, StorageError};
pub use kv::FORMAT_VERSION;
pub use options::{Durability, StoreOptions};
pub use pod_history::{PodObservation, PodVersion};
pub use prune::{PruneStats, ScanFilter, SegmentScan};
pub use retention::{
    Hold, HoldRequest, RetentionOptions, RetentionPolicy, RetentionReport, RetentionRule,
};
pub use roaring;
pub use segment::writer::SegmentLayout;
pub use store::{Committed, CompactionStats, FlushStats, Store, WriteReceipt};
pub use version::{HotBatch, Version};
pub use vigil_model::{SignalKind, schema};
