//! The store: one directory holding a RocksDB database (hot rows, pod dictionary, manifest)
//! and a `segments/` directory of Parquet files.
//!
//! Writers call [`Store::write`]; a committer thread groups concurrent writes into one
//! RocksDB write (one fsync in `sync` mode) and publishes them in a new [`Version`] before
//! acknowledging. A background thread flushes hot rows into segments and compacts small
//! segments. Readers take [`Store::version`] and never block writers.

mod background;
mod commit;
pub(crate) mod compaction;
pub(crate) mod flush;
mod open;
pub(crate) mod shared;

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

use crate::SignalKind;
use crate::error::{Result, StorageError};
use crate::kv::encode_hot;
use crate::options::StoreOptions;
use crate::pod_history::{PodObservation, PodVersion};
use crate::pods::{PodDictionary, pod_keys};
use crate::retention::{Hold, HoldRequest, RetentionPolicy, RetentionReport};
use crate::validate::normalize;
use crate::version::Version;

pub use compaction::CompactionStats;
pub use flush::FlushStats;

use commit::CommitRequest;
pub(crate) use shared::Shared;
use shared::{Cause, Task, VersionEdit};

/// What an acknowledged write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteReceipt {
    /// Rows made durable.
    pub rows: usize,
    /// WAL sequence numbers given to the write's batches (equal for a single batch).
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A committed write: its receipt and its rows as stored.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    pub receipt: WriteReceipt,
    /// In the kind's canonical schema; empty batches left out.
    pub batches: Vec<RecordBatch>,
}

/// An open store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    shared: Arc<Shared>,
    commit_tx: RwLock<Option<Sender<CommitRequest>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    background: Mutex<Option<background::Worker>>,
    retention: Mutex<Option<crate::retention::worker::Worker>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.shared.dir())
            .finish()
    }
}

impl Store {
    /// True if `dir` holds a store (one [`Store::open`] created), without opening it.
    pub fn exists(dir: impl AsRef<Path>) -> bool {
        dir.as_ref().join("kv").join("CURRENT").is_file()
    }

    /// Opens (or creates) the store in `dir`, recovering from any earlier crash: acknowledged
    /// rows come back exactly once, half-written segments are deleted.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        open::open(dir.as_ref(), options)
    }

    pub fn dir(&self) -> &Path {
        self.shared.dir()
    }

    pub fn options(&self) -> &StoreOptions {
        self.shared.options()
    }

    /// Folds observations of pods into the pod history (the `pods` table) and persists what
    /// changed, with the store's durability.
    pub fn observe_pods(&self, observations: &[PodObservation]) -> Result<()> {
        self.shared.observe_pods(observations)
    }

    /// Every version of every pod, ordered by (cluster, namespace, pod, valid_from).
    pub fn pod_history(&self) -> Vec<PodVersion> {
        self.shared.pod_history()
    }

    /// Validates, makes durable and publishes one batch of `kind`. Blocks until the batch is
    /// durable (per the durability mode) and visible to every later [`Store::version`].
    pub fn write(&self, kind: SignalKind, batch: &RecordBatch) -> Result<WriteReceipt> {
        self.write_all(kind, std::slice::from_ref(batch))
    }

    /// Like [`Store::write`] for several batches of one kind, all or nothing: after a crash
    /// either every batch is there or none is.
    pub fn write_all(&self, kind: SignalKind, batches: &[RecordBatch]) -> Result<WriteReceipt> {
        Ok(self.commit(kind, batches)?.receipt)
    }

    /// [`Store::write_all`], returning the rows as stored (the kind's canonical schema) with
    /// the receipt, for whoever must see every committed write.
    pub fn commit(&self, kind: SignalKind, batches: &[RecordBatch]) -> Result<Committed> {
        if kind == SignalKind::Rollup {
            return Err(StorageError::InvalidBatch {
                kind: kind.as_str(),
                column: "*".into(),
                problem: "metric_rollups is written by retention only".into(),
            });
        }
        let mut parts = Vec::with_capacity(batches.len());
        let mut canonical = Vec::with_capacity(batches.len());
        let mut pods = Vec::new();
        for batch in batches {
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = normalize(kind, batch)?;
            pods.extend(pod_keys(&batch));
            let record = encode_hot(kind, &batch)?;
            canonical.push(batch.clone());
            parts.push((batch, record));
        }
        if parts.is_empty() {
            return Ok(Committed::default());
        }
        self.stall_while_too_many_hot_rows();
        let (reply, receipt) = crossbeam_channel::bounded(1);
        {
            let tx = self.commit_tx.read();
            let tx = tx.as_ref().ok_or(StorageError::ShuttingDown)?;
            tx.send(CommitRequest {
                kind,
                parts,
                pods,
                reply,
            })
            .map_err(|_| StorageError::ShuttingDown)?;
        }
        let receipt = receipt.recv().map_err(|_| StorageError::ShuttingDown)??;
        Ok(Committed {
            receipt,
            batches: canonical,
        })
    }

    /// Blocks while more rows are hot than `stall_rows`, so memory stays bounded when
    /// writers outrun the flusher. Only with background flushing on.
    fn stall_while_too_many_hot_rows(&self) {
        if !self.shared.options().background {
            return;
        }
        self.shared.stall_while_too_many_hot_rows(|| {
            if let Some(worker) = self.background.lock().as_ref() {
                worker.wake();
            }
        });
    }

    /// The current state: hot rows and live segments. Never changes once returned.
    pub fn version(&self) -> Version {
        self.shared.current()
    }

    /// The pod dictionary.
    pub fn pods(&self) -> &PodDictionary {
        self.shared.pods()
    }

    /// Writes every hot row into segments now.
    pub fn flush(&self) -> Result<FlushStats> {
        flush::flush(&self.shared)
    }

    /// Merges every window's small segments now (however few there are).
    pub fn compact(&self) -> Result<CompactionStats> {
        compaction::compact(&self.shared, 2)
    }

    /// The retention policy in effect.
    pub fn retention_policy(&self) -> &RetentionPolicy {
        &self.shared.options().retention.policy
    }

    /// When the policy took effect (it differed from the one the store last ran with), by the
    /// store's clock. Background passes delete nothing until `change_grace` after it.
    pub fn retention_policy_since(&self) -> i64 {
        self.shared.policy_since()
    }

    /// Runs a retention pass now, grace or not: logs what it will delete, then deletes it.
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        // Enforcing records the rules as the ones in effect (a dry run does not).
        self.shared
            .record_policy(crate::retention::Recording::Explicit)?;
        crate::retention::run(&self.shared, false)
    }

    /// What a retention pass now would delete and downsample, changing nothing.
    pub fn retention_dry_run(&self) -> Result<RetentionReport> {
        crate::retention::run(&self.shared, true)
    }

    /// Exempts rows of a pod in a time range from retention until released; durable when it
    /// returns.
    pub fn place_hold(&self, request: HoldRequest) -> Result<Hold> {
        if request.pod.trim().is_empty() {
            return Err(StorageError::InvalidHold("pod is empty".into()));
        }
        if request.from_ns > request.to_ns {
            return Err(StorageError::InvalidHold(format!(
                "from ({}) is after to ({})",
                crate::retention::format_instant(request.from_ns),
                crate::retention::format_instant(request.to_ns)
            )));
        }
        let _serial = self.shared.lock(Task::Retention);
        let hold = Hold {
            id: self.shared.next_hold_id()?,
            namespace: request.namespace.filter(|n| !n.is_empty()),
            pod: request.pod,
            from_ns: request.from_ns,
            to_ns: request.to_ns,
            reason: request.reason,
            placed_ns: self.shared.now_ns(),
        };
        let mut edit = VersionEdit::new(Cause::Hold);
        edit.place_hold(hold.clone());
        self.shared.apply(edit, self.shared.pending())?;
        tracing::info!(id = hold.id, pod = %hold.pod, reason = %hold.reason, "placed a retention hold");
        Ok(hold)
    }

    /// Ends a hold; false when there was none with this id.
    pub fn release_hold(&self, id: u64) -> Result<bool> {
        let _serial = self.shared.lock(Task::Retention);
        if !self.shared.holds()?.iter().any(|h| h.id == id) {
            return Ok(false);
        }
        let mut edit = VersionEdit::new(Cause::Hold);
        edit.release_hold(id);
        self.shared.apply(edit, self.shared.pending())?;
        tracing::info!(id, "released a retention hold");
        Ok(true)
    }

    /// Every hold in effect, by id.
    pub fn holds(&self) -> Result<Vec<Hold>> {
        self.shared.holds()
    }

    /// Reads every segment file and checks its size and CRC against the manifest.
    pub fn verify(&self) -> Result<()> {
        for segment in self.version().segments.iter() {
            let meta = segment.meta();
            let bytes =
                std::fs::read(segment.path()).map_err(|e| StorageError::io(segment.path(), e))?;
            if bytes.len() as u64 != meta.file_size {
                return Err(StorageError::corrupted(
                    segment.path(),
                    format!(
                        "file has {} bytes, the manifest says {}",
                        bytes.len(),
                        meta.file_size
                    ),
                ));
            }
            let crc = crc32fast::hash(&bytes);
            if crc != meta.crc32 {
                return Err(StorageError::corrupted(
                    segment.path(),
                    format!(
                        "CRC-32 {crc:08x} does not match the manifest's {:08x}",
                        meta.crc32
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Stops the background worker and the committer, after every write already sent has
    /// been acknowledged or refused. Hot rows stay in the WAL; nothing needs flushing.
    pub fn close(&self) -> Result<()> {
        self.shared.start_closing();
        if let Some(worker) = self.retention.lock().take() {
            worker.stop();
        }
        if let Some(worker) = self.background.lock().take() {
            worker.stop();
        }
        self.commit_tx.write().take();
        let committer = self.committer.lock().take();
        if let Some(handle) = committer {
            let _ = handle.join();
            // Only the first close does this; later calls find nothing to stop.
            self.shared.flush_memtables()?;
        }
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
