//! Options of [`crate::Store::open`], with defaults suited to one node ingesting a cluster.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Result, StorageError};
use crate::retention::RetentionOptions;
use crate::segment::writer::SegmentLayout;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the WAL is fsynced. Survives power loss. Concurrent writers share fsyncs
    /// (group commit).
    #[default]
    Sync,
    /// After the WAL record is handed to the operating system. Survives a crash of the
    /// process (`kill -9`), not of the machine.
    Buffered,
}

impl std::str::FromStr for Durability {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sync" => Ok(Durability::Sync),
            "buffered" => Ok(Durability::Buffered),
            other => Err(StorageError::InvalidOption {
                option: "durability",
                problem: format!("`{other}` is neither `sync` nor `buffered`"),
            }),
        }
    }
}

/// How the store behaves.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Flush hot rows to segments once this many are buffered...
    pub flush_rows: usize,
    /// ...or once they take this many bytes of memory...
    pub flush_bytes: usize,
    /// ...or once the oldest has waited this long.
    pub flush_age: Duration,
    /// Writers wait for a flush while more than this many rows are hot.
    pub stall_rows: usize,
    /// Segments never span two windows of this length (aligned to the Unix epoch).
    pub segment_window: Duration,
    /// Segments smaller than half of this are merged, up to this many rows per segment.
    pub compaction_target_rows: u64,
    /// Background compaction waits for this many small segments in one window.
    pub compaction_min_inputs: usize,
    pub layout: SegmentLayout,
    /// Run flush and compaction in background threads. Off, they happen only when asked.
    pub background: bool,
    pub clock: Arc<dyn Clock>,
    /// What to keep how long, and how often to check (`docs/retention.md`). By default
    /// everything is kept.
    pub retention: RetentionOptions,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Sync,
            flush_rows: 1 << 20,
            flush_bytes: 256 << 20,
            flush_age: Duration::from_secs(60),
            stall_rows: 8 << 20,
            segment_window: Duration::from_secs(3600),
            compaction_target_rows: 16 << 20,
            compaction_min_inputs: 4,
            layout: SegmentLayout::default(),
            background: true,
            clock: Arc::new(SystemClock),
            retention: RetentionOptions::default(),
        }
    }
}

impl StoreOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |option: &'static str, problem: &str| {
            Err(StorageError::InvalidOption {
                option,
                problem: problem.to_string(),
            })
        };
        if self.flush_rows == 0 {
            return bad("flush_rows", "must be at least 1");
        }
        if self.stall_rows < self.flush_rows {
            return bad("stall_rows", "must be at least flush_rows");
        }
        if self.segment_window < Duration::from_secs(1) {
            return bad("segment_window", "must be at least one second");
        }
        if self.compaction_min_inputs < 2 {
            return bad("compaction_min_inputs", "must be at least 2");
        }
        if self.layout.row_group_rows == 0 || self.layout.page_rows == 0 {
            return bad("layout", "row group and page sizes must be at least 1 row");
        }
        if !(1..=22).contains(&self.layout.zstd_level) {
            return bad("layout.zstd_level", "must be between 1 and 22");
        }
        if self.retention.check_every < Duration::from_secs(1) {
            return bad("retention.check_every", "must be at least one second");
        }
        self.retention.policy.check_window(self.segment_window)?;
        Ok(())
    }

    pub(crate) fn window_ns(&self) -> i64 {
        vigil_model::time::nanos(self.segment_window)
    }
}
