//! A version: the complete, immutable state a reader sees, hot rows and live segments together.
//!
//! Invariant: every acknowledged row is in exactly one place of every version, either a hot
//! batch or a segment. A flush publishes "segments + S, hot - S" as one new version, so no
//! reader ever sees a row twice or misses one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;

use crate::SignalKind;
use crate::prune::ScanFilter;
use crate::schema::{ColumnType, Indexed, columns};
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
    /// Computed by the first scan that needs it, off the write path; shared by every later
    /// version holding this batch.
    summary: Arc<OnceLock<HotSummary>>,
}

impl HotBatch {
    pub fn new(seq: u64, kind: SignalKind, arrived_ns: i64, batch: RecordBatch) -> HotBatch {
        HotBatch {
            seq,
            kind,
            arrived_ns,
            batch,
            summary: Arc::default(),
        }
    }

    /// What the batch holds, to skip it without reading its rows.
    pub fn summary(&self) -> &HotSummary {
        self.summary
            .get_or_init(|| HotSummary::of(self.kind, &self.batch))
    }
}

/// The time range of a hot batch and the distinct values of its indexed string columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HotSummary {
    pub min_ts: i64,
    pub max_ts: i64,
    /// Column -> its distinct values, for indexed string columns with at most
    /// [`HotSummary::MAX_VALUES`] of them (absent: too many to list, or not indexed).
    pub values: BTreeMap<String, BTreeSet<String>>,
}

impl HotSummary {
    /// Columns with more distinct values than this in one batch are not listed.
    pub const MAX_VALUES: usize = 256;

    pub fn of(kind: SignalKind, batch: &RecordBatch) -> HotSummary {
        let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
        if let Some(ts) = batch
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        {
            for &t in ts.values() {
                min_ts = min_ts.min(t);
                max_ts = max_ts.max(t);
            }
        } else {
            (min_ts, max_ts) = (i64::MIN, i64::MAX);
        }
        let mut values = BTreeMap::new();
        for spec in columns(kind) {
            if spec.ty != ColumnType::Utf8 || spec.indexed == Indexed::No {
                continue;
            }
            let Some(array) = batch
                .column_by_name(spec.name)
                .and_then(|c| c.as_string_opt::<i32>())
            else {
                continue;
            };
            let mut distinct = BTreeSet::new();
            let mut listed = true;
            for i in 0..array.len() {
                if array.is_valid(i) && !distinct.contains(array.value(i)) {
                    if distinct.len() == Self::MAX_VALUES {
                        listed = false;
                        break;
                    }
                    distinct.insert(array.value(i).to_string());
                }
            }
            if listed {
                values.insert(spec.name.to_string(), distinct);
            }
        }
        HotSummary {
            min_ts,
            max_ts,
            values,
        }
    }

    /// False when no row of the batch can match `filter`.
    pub fn may_match(&self, filter: &ScanFilter) -> bool {
        if filter.min_ts.is_some_and(|lo| self.max_ts < lo)
            || filter.max_ts.is_some_and(|hi| self.min_ts > hi)
        {
            return false;
        }
        filter.values.iter().all(|(column, wanted)| {
            self.values
                .get(column)
                .is_none_or(|present| wanted.iter().any(|v| present.contains(v)))
        })
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray, TimestampNanosecondArray};

    use super::*;
    use crate::schema::kind_schema;
    use crate::validate::normalize;

    #[test]
    fn a_hot_summary_skips_batches_no_row_of_which_can_match() {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            kind_schema(SignalKind::Metric)
                .field_with_name("ts")
                .unwrap()
                .clone(),
            arrow::datatypes::Field::new("pod", arrow::datatypes::DataType::Utf8, true),
            arrow::datatypes::Field::new("name", arrow::datatypes::DataType::Utf8, false),
            arrow::datatypes::Field::new("value", arrow::datatypes::DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![10, 20, 15]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
                Arc::new(StringArray::from(vec!["cpu", "cpu", "mem"])),
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
            ],
        )
        .unwrap();
        let batch = normalize(SignalKind::Metric, &batch).unwrap();
        let hot = HotBatch::new(1, SignalKind::Metric, 0, batch);
        let s = hot.summary();
        assert_eq!((s.min_ts, s.max_ts), (10, 20));
        let filter = |lo: Option<i64>, hi: Option<i64>, values: &[(&str, &[&str])]| ScanFilter {
            min_ts: lo,
            max_ts: hi,
            values: values
                .iter()
                .map(|(c, v)| (c.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            matches_nothing: false,
        };
        assert!(s.may_match(&filter(Some(20), None, &[])));
        assert!(!s.may_match(&filter(Some(21), None, &[])));
        assert!(!s.may_match(&filter(None, Some(9), &[])));
        assert!(s.may_match(&filter(None, None, &[("pod", &["z", "b"])])));
        assert!(!s.may_match(&filter(None, None, &[("pod", &["z"])])));
        assert!(!s.may_match(&filter(None, None, &[("pod", &["a"]), ("name", &["disk"])])));
        // A column it does not list cannot rule the batch out.
        assert!(s.may_match(&filter(None, None, &[("no_such_column", &["x"])])));
    }
}
