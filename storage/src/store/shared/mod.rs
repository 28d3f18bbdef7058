//! The state the store handle, the committer and the maintenance threads share, behind a
//! narrow API: its fields are private to this module.
//!
//! Readers take [`Shared::current`]. The write path appends hot rows with
//! [`Shared::commit_hot`]. Maintenance (flush, compaction, retention) takes its task's lock
//! ([`Shared::lock`], in the order [`locks`] documents), writes new segment files through
//! [`PendingSegments`], and changes the manifest only by applying one [`VersionEdit`]
//! ([`Shared::apply`]). The version lock is taken in [`Shared::publish`] alone.

mod edit;
mod locks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use parking_lot::{Condvar, Mutex, RwLock};
use rocksdb::WriteBatch;

use crate::error::Result;
use crate::kv::Kv;
use crate::options::{Durability, StoreOptions};
use crate::pod_history::{PodHistory, PodObservation, PodVersion};
use crate::pods::{PodDictionary, PodKey};
use crate::retention::{Hold, holds};
use crate::store::WriteReceipt;
use crate::version::{HotBatch, Version};
use crate::{SignalKind, retention};

pub(crate) use edit::{Cause, PendingSegments, VersionEdit};
pub(crate) use locks::{Held, Task};

/// Everything `Store::open` recovered, to build the shared state from.
pub(crate) struct Recovered {
    pub dir: PathBuf,
    pub segments_dir: PathBuf,
    pub options: StoreOptions,
    pub kv: Kv,
    pub pods: PodDictionary,
    pub pod_history: PodHistory,
    pub version: Version,
    pub next_seq: u64,
    pub next_segment_id: u64,
    pub policy_since: i64,
}

/// One write request of the committer's group: its kind, its canonical batches with their
/// encoded hot records, and the pods they name.
pub(crate) struct HotWrite<'a> {
    pub kind: SignalKind,
    pub parts: &'a [(RecordBatch, Vec<u8>)],
    pub pods: &'a [PodKey],
}

/// State shared by the store handle, the committer and the background workers.
pub(crate) struct Shared {
    dir: PathBuf,
    segments_dir: PathBuf,
    options: StoreOptions,
    kv: Kv,
    pods: PodDictionary,
    pod_history: PodHistory,
    version: RwLock<Version>,
    next_seq: AtomicU64,
    next_segment_id: AtomicU64,
    locks: locks::Locks,
    /// When the current retention policy took effect (store clock, nanoseconds).
    policy_since: AtomicI64,
    /// Counts flushes; signalled after every one, for writers stalled on too many hot rows.
    flushed: (Mutex<u64>, Condvar),
    closing: AtomicBool,
}

impl Shared {
    pub fn new(r: Recovered) -> Shared {
        Shared {
            dir: r.dir,
            segments_dir: r.segments_dir,
            options: r.options,
            kv: r.kv,
            pods: r.pods,
            pod_history: r.pod_history,
            version: RwLock::new(r.version),
            next_seq: AtomicU64::new(r.next_seq),
            next_segment_id: AtomicU64::new(r.next_segment_id),
            locks: locks::Locks::default(),
            policy_since: AtomicI64::new(r.policy_since),
            flushed: (Mutex::new(0), Condvar::new()),
            closing: AtomicBool::new(false),
        }
    }

    // Reading.

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segments_dir(&self) -> &Path {
        &self.segments_dir
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Now, by the store's clock.
    pub fn now_ns(&self) -> i64 {
        self.options.clock.now_ns()
    }

    /// The current version: hot rows and live segments. Never changes once returned.
    pub fn current(&self) -> Version {
        self.version.read().clone()
    }

    pub fn pods(&self) -> &PodDictionary {
        &self.pods
    }

    pub fn pod_history(&self) -> Vec<PodVersion> {
        self.pod_history.snapshot()
    }

    /// Every hold in effect, by id.
    pub fn holds(&self) -> Result<Vec<Hold>> {
        holds::load(&self.kv)
    }

    /// The id the next hold gets.
    pub fn next_hold_id(&self) -> Result<u64> {
        holds::next_id(&self.kv)
    }

    /// When the retention policy in effect took effect, by the store's clock.
    pub fn policy_since(&self) -> i64 {
        self.policy_since.load(Ordering::SeqCst)
    }

    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    pub fn start_closing(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    // The write path.

    /// Makes one group of writes durable in one RocksDB write (new pod ids with the rows that
    /// introduce them), then publishes their rows as hot batches. One receipt per write.
    pub fn commit_hot(&self, group: &[HotWrite<'_>]) -> Result<Vec<WriteReceipt>> {
        let mut batch = WriteBatch::default();
        let mut new_pods = Vec::new();
        let mut receipts = Vec::with_capacity(group.len());
        let mut hot = Vec::new();
        let arrived_ns = self.now_ns();
        for write in group {
            for (id, key) in self.pods.assign(write.pods.iter().cloned()) {
                self.kv.put_pod(&mut batch, id, &key);
                new_pods.push((id, key));
            }
            let mut receipt = WriteReceipt::default();
            for (i, (rows, record)) in write.parts.iter().enumerate() {
                let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
                self.kv.put_hot(&mut batch, seq, record);
                if i == 0 {
                    receipt.first_seq = seq;
                }
                receipt.last_seq = seq;
                receipt.rows += rows.num_rows();
                hot.push(HotBatch::new(seq, write.kind, arrived_ns, rows.clone()));
            }
            receipts.push(receipt);
        }
        crate::failpoints::crash_point!("commit::before_write");
        let sync = self.options.durability == Durability::Sync;
        if let Err(e) = self.kv.write(batch, sync) {
            self.pods.rollback(&new_pods);
            return Err(e);
        }
        self.publish(|version| Version {
            hot: Arc::new(version.hot.iter().cloned().chain(hot).collect()),
            segments: Arc::clone(&version.segments),
        });
        crate::failpoints::crash_point!("commit::after_write");
        Ok(receipts)
    }

    /// Folds observations of pods into the pod history and persists what changed, with the
    /// store's durability.
    pub fn observe_pods(&self, observations: &[PodObservation]) -> Result<()> {
        if observations.is_empty() {
            return Ok(());
        }
        let _persisting = self.pod_history.persist.lock();
        let changed = self.pod_history.observe(observations);
        if changed.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for version in &changed {
            self.kv.put_pod_version(&mut batch, version);
        }
        self.kv
            .write(batch, self.options.durability == Durability::Sync)
    }

    /// Blocks while more rows are hot than `stall_rows` (and the store is not closing),
    /// calling `wake_flusher` and waiting for flushes.
    pub fn stall_while_too_many_hot_rows(&self, wake_flusher: impl Fn()) {
        let (lock, cvar) = &self.flushed;
        let mut guard = lock.lock();
        while self.current().hot_rows() > self.options.stall_rows && !self.closing() {
            wake_flusher();
            cvar.wait_for(&mut guard, Duration::from_millis(100));
        }
    }

    // Maintenance.

    /// Takes a maintenance task's lock (see [`locks`] for the order).
    pub fn lock(&self, task: Task) -> Held<'_> {
        self.locks.lock(task)
    }

    /// An empty set of pending segment files: reserve ids in it, write their files, then
    /// hand it to [`Shared::apply`] with the edit that lists them.
    pub fn pending(&self) -> PendingSegments<'_> {
        PendingSegments::new(self)
    }

    /// Records the retention policy in effect as the one enforced (starting its grace if it
    /// changed), or only reads the record; returns when it took effect.
    pub(crate) fn record_policy(&self, recording: retention::Recording) -> Result<i64> {
        let since =
            retention::record_policy(&self.kv, &self.options.retention, self.now_ns(), recording)?;
        self.policy_since.store(since, Ordering::SeqCst);
        Ok(since)
    }

    /// Gives back the disk space of hot rows now in segments.
    pub fn compact_hot(&self) {
        self.kv.compact_hot();
    }

    /// Rewrites the manifest's table files without entries removed by retention.
    pub fn compact_manifest(&self) {
        self.kv.compact_manifest();
    }

    /// Writes RocksDB's memtables to disk (at close, so the next open replays nothing).
    pub fn flush_memtables(&self) -> Result<()> {
        self.kv.flush_memtables(true)
    }

    /// The one place a new version is published: `change` gets the current one and returns
    /// its successor, under the version lock.
    fn publish(&self, change: impl FnOnce(&Version) -> Version) {
        let mut version = self.version.write();
        *version = change(&version);
    }

    fn allocate_segment_id(&self) -> u64 {
        self.next_segment_id.fetch_add(1, Ordering::SeqCst)
    }

    fn notify_flushed(&self) {
        let (lock, cvar) = &self.flushed;
        *lock.lock() += 1;
        cvar.notify_all();
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
