//! The committer: one thread that turns queued writes into RocksDB writes.
//!
//! Group commit: while one write (and its fsync) is in progress, others queue up; the next
//! round takes all of them into a single RocksDB write batch, so N concurrent writers pay for
//! one fsync, not N. New pod ids are assigned here, single-threaded, and persisted in the same
//! write batch as the rows that introduced them.

use std::sync::Arc;

use arrow::array::RecordBatch;
use crossbeam_channel::{Receiver, Sender};

use crate::SignalKind;
use crate::error::{Result, StorageError};
use crate::pods::PodKey;
use crate::store::shared::HotWrite;
use crate::store::{Shared, WriteReceipt};

/// Upper bound on the bytes of one group, so a burst does not build a huge write batch.
const MAX_GROUP_BYTES: usize = 64 << 20;

/// One call of `Store::write_all`, validated and encoded by the caller's thread.
pub(crate) struct CommitRequest {
    pub kind: SignalKind,
    /// Canonical batches and their encoded hot records.
    pub parts: Vec<(RecordBatch, Vec<u8>)>,
    pub pods: Vec<PodKey>,
    pub reply: Sender<Result<WriteReceipt>>,
}

pub(crate) fn run(shared: Arc<Shared>, requests: Receiver<CommitRequest>, wake_flusher: impl Fn()) {
    while let Ok(first) = requests.recv() {
        let mut bytes = first.parts.iter().map(|(_, r)| r.len()).sum::<usize>();
        let mut group = vec![first];
        while bytes < MAX_GROUP_BYTES {
            match requests.try_recv() {
                Ok(next) => {
                    bytes += next.parts.iter().map(|(_, r)| r.len()).sum::<usize>();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        commit_group(&shared, group);
        let v = shared.current();
        let options = shared.options();
        if v.hot_rows() >= options.flush_rows || v.hot_bytes() >= options.flush_bytes {
            wake_flusher();
        }
    }
}

fn commit_group(shared: &Shared, group: Vec<CommitRequest>) {
    let writes: Vec<HotWrite<'_>> = group
        .iter()
        .map(|r| HotWrite {
            kind: r.kind,
            parts: &r.parts,
            pods: &r.pods,
        })
        .collect();
    match shared.commit_hot(&writes) {
        Ok(receipts) => {
            for (request, receipt) in group.iter().zip(receipts) {
                let _ = request.reply.send(Ok(receipt));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed");
            for request in &group {
                let err = match &e {
                    StorageError::RocksDb(r) => StorageError::RocksDb(r.clone()),
                    _ => StorageError::ShuttingDown,
                };
                let _ = request.reply.send(Err(err));
            }
        }
    }
}
