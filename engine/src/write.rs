//! The one way rows enter the store: [`WritePath::write_all`], and the observers it tells.
//!
//! Every path that writes rows goes through it: [`crate::Db::write`] and its variants (which
//! the server's ingest pipeline and `vigil import` call) and SQL `INSERT`. Once a write is
//! durable, every registered [`WriteObserver`] gets the committed rows, in the kind's
//! canonical schema, exactly once, on the writing thread, before the write returns. The
//! detection engine builds its per-row rules and first-seen baselines on this.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use parking_lot::RwLock;
use vigil_storage::{SignalKind, Store, WriteReceipt};

use crate::error::Result;

/// One acknowledged write: its rows are durable and visible to every later query.
#[derive(Debug)]
pub struct CommittedWrite<'a> {
    pub kind: SignalKind,
    /// The rows as stored: the kind's canonical schema, in arrival order.
    pub batches: &'a [RecordBatch],
    pub receipt: WriteReceipt,
}

impl CommittedWrite<'_> {
    /// Rows in all of the write's batches.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Told of every committed write. Runs on the writer's thread while the writer waits, so it
/// should hand work off rather than do it; a panic is caught and logged, and does not undo
/// or fail the write.
pub trait WriteObserver: Send + Sync + std::fmt::Debug {
    fn committed(&self, write: &CommittedWrite<'_>);
}

/// The store's write path with its observers.
#[derive(Debug)]
pub struct WritePath {
    store: Arc<Store>,
    observers: RwLock<Vec<Arc<dyn WriteObserver>>>,
}

impl WritePath {
    pub(crate) fn new(store: Arc<Store>) -> WritePath {
        WritePath {
            store,
            observers: RwLock::new(Vec::new()),
        }
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Registers an observer of every write from now on.
    pub fn observe(&self, observer: Arc<dyn WriteObserver>) {
        self.observers.write().push(observer);
    }

    /// Writes several batches of one kind atomically (durable when this returns), then tells
    /// the observers. Blocks the calling thread.
    pub fn write_all(&self, kind: SignalKind, batches: &[RecordBatch]) -> Result<WriteReceipt> {
        let committed = self.store.commit(kind, batches)?;
        if committed.receipt.rows == 0 {
            return Ok(committed.receipt);
        }
        let write = CommittedWrite {
            kind,
            batches: &committed.batches,
            receipt: committed.receipt,
        };
        let observers = self.observers.read().clone();
        for observer in observers {
            let told = std::panic::catch_unwind(AssertUnwindSafe(|| observer.committed(&write)));
            if told.is_err() {
                tracing::error!(
                    ?observer,
                    kind = %kind,
                    rows = write.rows(),
                    "a write observer panicked; the write stands"
                );
            }
        }
        Ok(committed.receipt)
    }
}

/// One write as a [`WriteLog`] remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedWrite {
    pub kind: SignalKind,
    pub batches: usize,
    pub rows: usize,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Every batch was in the kind's canonical schema.
    pub canonical: bool,
}

/// An observer that remembers every committed write: what tests (and tools that audit the
/// write path) register to see which writes reached observers, and how often.
#[derive(Debug, Default)]
pub struct WriteLog {
    writes: parking_lot::Mutex<Vec<LoggedWrite>>,
}

impl WriteLog {
    /// The writes seen so far, in the order they were committed.
    pub fn writes(&self) -> Vec<LoggedWrite> {
        self.writes.lock().clone()
    }
}

impl WriteObserver for WriteLog {
    fn committed(&self, write: &CommittedWrite<'_>) {
        let schema = vigil_model::schema::kind_schema(write.kind);
        self.writes.lock().push(LoggedWrite {
            kind: write.kind,
            batches: write.batches.len(),
            rows: write.rows(),
            first_seq: write.receipt.first_seq,
            last_seq: write.receipt.last_seq,
            canonical: write.batches.iter().all(|b| b.schema() == schema),
        });
    }
}
