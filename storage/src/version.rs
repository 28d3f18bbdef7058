//! A version: the complete, immutable state a reader sees, hot rows and live segments together.
//!
//! Invariant: every acknowledged row is in exactly one place of every version, either a hot
//! batch or a segment. A flush publishes "segments + S, hot - S" as one new version, so no
//! reader ever sees a row twice or misses one.

use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::kind::SignalKind;
use crate::segment::Segment;

/// One acknowledged write that is not yet in a segment.
#[derive(Debug, Clone)]
pub struct HotBatch {
    pub seq: u64,
    pub kind: SignalKind,
    /// When the write was acknowledged, by the store's clock (drives age-based flushes).
    pub arrived_ns: i64,
    /// In the kind's canonical schema, in arrival order (not sorted).
    pub batch: RecordBatch,
}

/// What a query reads: cheap to clone, never changes once published.
#[derive(Debug, Clone, Default)]
pub struct Version {
    pub hot: Arc<Vec<HotBatch>>,
    pub segments: Arc<Vec<Arc<Segment>>>,
}

impl Version {
    /// The hot batches of one kind.
    pub fn hot_batches(&self, kind: SignalKind) -> impl Iterator<Item = &HotBatch> {
        self.hot.iter().filter(move |h| h.kind == kind)
    }

    /// The live segments of one kind.
    pub fn segments_of(&self, kind: SignalKind) -> impl Iterator<Item = &Arc<Segment>> {
        self.segments.iter().filter(move |s| s.meta().kind == kind)
    }

    pub fn hot_rows(&self) -> usize {
        self.hot.iter().map(|h| h.batch.num_rows()).sum()
    }

    pub fn hot_bytes(&self) -> usize {
        self.hot
            .iter()
            .map(|h| h.batch.get_array_memory_size())
            .sum()
    }

    pub fn segment_rows(&self) -> u64 {
        self.segments.iter().map(|s| s.meta().rows).sum()
    }
}
