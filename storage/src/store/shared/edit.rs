//! The manifest edit protocol: the one way the set of live segments (and the holds) change.
//!
//! Flush, compaction and retention all follow the same steps, each durable before the next
//! (RocksDB's `VersionEdit` + `LogAndApply` is the model):
//!
//! 1. **reserve**: segment ids are recorded as pending in one synced RocksDB write, before
//!    any file exists ([`PendingSegments::reserve`]), so that open can tell the files of an
//!    interrupted edit from files the manifest lost;
//! 2. **write**: each new segment file is written under a temporary name, fsynced, renamed
//!    and its directory fsynced (`SegmentWriter::finish`);
//! 3. **commit**: one synced RocksDB write adds the new segments' manifest entries, removes
//!    the replaced ones (recording them as dropped), deletes the pending records, and, for a
//!    flush, the hot records it wrote out ([`Shared::apply`]);
//! 4. **publish**: one new [`Version`] replaces the current one;
//! 5. **retire**: replaced segments are marked obsolete; each file is deleted when the last
//!    query reading it ends.
//!
//! A crash before 3 leaves pending files, which open deletes; after 3 the edit is whole.
//! An edit that fails before 3 is undone by dropping its [`PendingSegments`], which deletes
//! the files it reserved (written or not) and then their pending records. Every step has a
//! fail point (`edit::after_reserve`, `edit::before_commit`, `edit::after_commit`,
//! `edit::after_publish`, and the caller's own `<cause>::before_manifest` and
//! `<cause>::after_manifest` around the commit) for the crash tests.

use std::collections::HashSet;
use std::sync::Arc;

use rocksdb::WriteBatch;

use super::Shared;
use crate::SignalKind;
use crate::error::Result;
use crate::retention::{Hold, holds};
use crate::segment::writer::SegmentWriter;
use crate::segment::{Segment, SegmentMeta, meta};
use crate::version::Version;

/// Who edits the manifest, which names the fail points around its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Hot rows into segments.
    Flush,
    /// Small segments merged, or one rewritten in the current row order.
    Compaction,
    /// A segment replaced by its rows that stay and the rollups of those that roll.
    RetentionRewrite,
    /// Wholly expired segments removed.
    RetentionDrop,
    /// A legal hold placed or released.
    Hold,
}

// Only crash points name the steps; release builds have none.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
impl Cause {
    fn before_commit(self) -> &'static str {
        match self {
            Cause::Flush => "flush::before_manifest",
            Cause::Compaction => "compaction::before_manifest",
            Cause::RetentionRewrite => "retention::before_manifest",
            Cause::RetentionDrop => "retention::before_drop",
            Cause::Hold => "hold::before_write",
        }
    }

    fn after_commit(self) -> &'static str {
        match self {
            Cause::Flush => "flush::after_manifest",
            Cause::Compaction => "compaction::after_manifest",
            Cause::RetentionRewrite => "retention::after_manifest",
            Cause::RetentionDrop => "retention::after_drop",
            Cause::Hold => "hold::after_write",
        }
    }
}

/// One change of the manifest: segments added (rollups included), segments removed, hot
/// rows written out, holds placed or released. Built by a maintenance task, applied whole by
/// [`Shared::apply`] or not at all.
#[derive(Debug)]
pub(crate) struct VersionEdit {
    cause: Cause,
    added: Vec<SegmentMeta>,
    removed: Vec<Arc<Segment>>,
    /// Hot batches with sequence numbers up to this one are now in the added segments.
    hot_upto: Option<u64>,
    holds_placed: Vec<Hold>,
    holds_released: Vec<u64>,
}

impl VersionEdit {
    pub fn new(cause: Cause) -> VersionEdit {
        VersionEdit {
            cause,
            added: Vec::new(),
            removed: Vec::new(),
            hot_upto: None,
            holds_placed: Vec::new(),
            holds_released: Vec::new(),
        }
    }

    /// A finished segment file whose id the edit's [`PendingSegments`] reserved.
    pub fn add(&mut self, meta: SegmentMeta) {
        self.added.push(meta);
    }

    /// A live segment leaving the manifest.
    pub fn remove(&mut self, segment: Arc<Segment>) {
        self.removed.push(segment);
    }

    /// Hot batches up to `seq` leave the version: the added segments hold their rows.
    pub fn flush_hot_upto(&mut self, seq: u64) {
        self.hot_upto = Some(seq);
    }

    pub fn place_hold(&mut self, hold: Hold) {
        self.holds_placed.push(hold);
    }

    pub fn release_hold(&mut self, id: u64) {
        self.holds_released.push(id);
    }

    pub fn added(&self) -> &[SegmentMeta] {
        &self.added
    }
}

/// Segment ids reserved for the files of one edit. Dropped without being applied, it deletes
/// their files (finished or not, whatever their kind) and then their pending records; if that
/// last write fails too, open finds the records and finishes the clean-up.
#[must_use = "dropping the reservation deletes its files"]
pub(crate) struct PendingSegments<'a> {
    shared: &'a Shared,
    ids: Vec<u64>,
    committed: bool,
}

impl std::fmt::Debug for PendingSegments<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSegments")
            .field("ids", &self.ids)
            .finish()
    }
}

impl<'a> PendingSegments<'a> {
    pub(super) fn new(shared: &'a Shared) -> Self {
        PendingSegments {
            shared,
            ids: Vec::new(),
            committed: false,
        }
    }

    /// Reserves `n` segment ids durably (one synced write), before any of their files exists.
    pub fn reserve(&mut self, n: usize) -> Result<Vec<u64>> {
        let ids: Vec<u64> = (0..n).map(|_| self.shared.allocate_segment_id()).collect();
        if ids.is_empty() {
            return Ok(ids);
        }
        let mut batch = WriteBatch::default();
        for &id in &ids {
            self.shared.kv.put_pending(&mut batch, id);
        }
        self.shared.kv.write(batch, true)?;
        self.ids.extend(&ids);
        crate::failpoints::crash_point!("edit::after_reserve");
        Ok(ids)
    }

    /// A writer of the segment file of a reserved id.
    pub fn create(&self, id: u64, kind: SignalKind) -> Result<SegmentWriter> {
        debug_assert!(self.ids.contains(&id), "segment {id} was not reserved");
        let shared = self.shared;
        SegmentWriter::create(&shared.segments_dir, id, kind, &shared.options.layout)
    }

    /// Reserves one id and creates the writer of its file.
    pub fn new_segment(&mut self, kind: SignalKind) -> Result<SegmentWriter> {
        let ids = self.reserve(1)?;
        self.create(ids[0], kind)
    }
}

impl Drop for PendingSegments<'_> {
    fn drop(&mut self) {
        if self.committed || self.ids.is_empty() {
            return;
        }
        let shared = self.shared;
        for &id in &self.ids {
            for kind in SignalKind::STORED {
                let path = shared.segments_dir.join(meta::file_name(id, kind));
                let _ = std::fs::remove_file(&path);
            }
        }
        let mut batch = WriteBatch::default();
        for &id in &self.ids {
            shared.kv.delete_pending(&mut batch, id);
        }
        if let Err(e) = shared.kv.write(batch, true) {
            tracing::warn!(error = %e, "could not forget abandoned segment ids; the next open will");
        }
    }
}

impl Shared {
    /// Applies one edit: commits it to the manifest in one synced write, publishes the new
    /// version and retires the removed segments. On error nothing changed, and `pending`'s
    /// files are deleted.
    pub fn apply(&self, edit: VersionEdit, mut pending: PendingSegments<'_>) -> Result<()> {
        let VersionEdit {
            cause,
            added,
            removed,
            hot_upto,
            holds_placed,
            holds_released,
        } = edit;
        debug_assert!(
            added.iter().all(|m| pending.ids.contains(&m.id)),
            "every added segment's id is reserved by the edit's pending segments"
        );
        debug_assert!(
            {
                let live: HashSet<u64> = self
                    .current()
                    .segments
                    .iter()
                    .map(|s| s.meta().id)
                    .collect();
                removed.iter().all(|s| live.contains(&s.meta().id))
            },
            "removed segments are live (their remover holds the compaction lock)"
        );
        let mut batch = WriteBatch::default();
        for meta in &added {
            self.kv.put_segment(&mut batch, meta);
        }
        for &id in &pending.ids {
            self.kv.delete_pending(&mut batch, id);
        }
        for segment in &removed {
            self.kv.delete_segment(&mut batch, segment.meta().id);
            self.kv.put_dropped(&mut batch, segment.meta().id);
        }
        if let Some(upto) = hot_upto {
            self.kv.delete_hot_upto(&mut batch, upto);
        }
        for hold in &holds_placed {
            holds::put(&self.kv, &mut batch, hold);
        }
        for &id in &holds_released {
            holds::delete(&self.kv, &mut batch, id);
        }
        if !added.is_empty() || !pending.ids.is_empty() {
            let next = self
                .next_segment_id
                .load(std::sync::atomic::Ordering::SeqCst);
            self.kv.put_next_segment_id(&mut batch, next);
        }

        crate::failpoints::crash_point!(cause.before_commit());
        crate::failpoints::crash_point!("edit::before_commit");
        self.kv.write(batch, true)?;
        pending.committed = true;
        crate::failpoints::crash_point!(cause.after_commit());
        crate::failpoints::crash_point!("edit::after_commit");

        if hot_upto.is_some()
            && let Err(e) = self.kv.flush_memtables(false)
        {
            // Only a hint to RocksDB: hot rows just deleted by range need not reach a table
            // file if their memtable is flushed soon.
            tracing::warn!(error = %e, "could not schedule a RocksDB memtable flush");
        }
        if !added.is_empty() || !removed.is_empty() || hot_upto.is_some() {
            let gone: HashSet<u64> = removed.iter().map(|s| s.meta().id).collect();
            let segments_dir = &self.segments_dir;
            self.publish(|current| {
                let hot = match hot_upto {
                    Some(upto) => Arc::new(
                        current
                            .hot
                            .iter()
                            .filter(|h| h.seq > upto)
                            .cloned()
                            .collect(),
                    ),
                    None => Arc::clone(&current.hot),
                };
                let segments = current
                    .segments
                    .iter()
                    .filter(|s| !gone.contains(&s.meta().id))
                    .cloned()
                    .chain(
                        added
                            .iter()
                            .map(|m| Arc::new(Segment::new(m.clone(), segments_dir))),
                    )
                    .collect();
                Version {
                    hot,
                    segments: Arc::new(segments),
                }
            });
        }
        crate::failpoints::crash_point!("edit::after_publish");
        for segment in &removed {
            segment.mark_obsolete();
        }
        if hot_upto.is_some() {
            self.notify_flushed();
        }
        tracing::trace!(?cause, "applied a manifest edit");
        Ok(())
    }
}
