//! Immutable Parquet segments: their metadata, index, writer, ordering and merge.

pub mod index;
pub mod meta;
pub mod sort;
pub mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Result, StorageError};
use sort::{ResortWithinPod, RowOrder};

pub use index::{ColumnIndex, SegmentIndex};
pub use meta::SegmentMeta;

/// A live segment: its manifest entry and the path of its file.
///
/// Snapshots and query plans hold `Arc<Segment>`s. When compaction or retention replaces a
/// segment it is marked obsolete, and its file is deleted when the last holder lets go, so a
/// query that planned against it can still read it.
#[derive(Debug)]
pub struct Segment {
    meta: SegmentMeta,
    path: PathBuf,
    obsolete: AtomicBool,
}

impl Segment {
    pub fn new(meta: SegmentMeta, dir: &Path) -> Self {
        let path = dir.join(meta.file_name());
        Segment {
            meta,
            path,
            obsolete: AtomicBool::new(false),
        }
    }

    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The segment's rows in batches of at most `batch_rows`, in the order segments of its
    /// kind are written now ([`RowOrder::of`]): a segment written in an older order is
    /// re-sorted one pod at a time.
    pub fn read_in_order(
        &self,
        batch_rows: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
        let file = File::open(&self.path).map_err(|e| StorageError::io(&self.path, e))?;
        let rows = ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(batch_rows)
            .build()?
            .map(|b| b.map_err(StorageError::from));
        let order = RowOrder::of(self.meta.kind);
        Ok(if self.meta.order == order {
            Box::new(rows)
        } else {
            Box::new(ResortWithinPod::new(rows, order))
        })
    }

    /// Deletes the file once no snapshot refers to the segment any more.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::SeqCst);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::SeqCst)
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            // Left behind, the file is an orphan that the next open deletes.
            tracing::warn!(path = %self.path.display(), error = %e, "could not delete obsolete segment");
        }
    }
}
