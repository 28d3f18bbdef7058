//! Immutable Parquet segments: their metadata, index, writer, ordering and merge.

pub mod index;
pub mod meta;
pub mod sort;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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
