//! The committer: one thread that turns queued writes into RocksDB writes.
//!
//! Group commit: while one write (and its fsync) is in progress, others queue up; the next
//! round takes all of them into a single RocksDB write batch, so N concurrent writers pay for
//! one fsync, not N. New pod ids are assigned here, single-threaded, and persisted in the same
//! write batch as the rows that introduced them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;
use crossbeam_channel::{Receiver, Sender};
use rocksdb::WriteBatch;

use crate::error::{Result, StorageError};
use crate::kind::SignalKind;
use crate::options::Durability;
use crate::pods::PodKey;
use crate::store::{Shared, WriteReceipt};
use crate::version::HotBatch;

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
        if v.hot_rows() >= shared.options.flush_rows || v.hot_bytes() >= shared.options.flush_bytes
        {
            wake_flusher();
        }
    }
}

fn commit_group(shared: &Shared, group: Vec<CommitRequest>) {
    let mut batch = WriteBatch::default();
    let mut new_pods = Vec::new();
    let mut receipts = Vec::with_capacity(group.len());
    let mut hot = Vec::new();
    let arrived_ns = shared.options.clock.now_ns();
    for request in &group {
        for (id, key) in shared.pods.assign(request.pods.iter().cloned()) {
            shared.kv.put_pod(&mut batch, id, &key);
            new_pods.push((id, key));
        }
        let mut receipt = WriteReceipt::default();
        for (i, (rows, record)) in request.parts.iter().enumerate() {
            let seq = shared.next_seq.fetch_add(1, Ordering::SeqCst);
            shared.kv.put_hot(&mut batch, seq, record);
            if i == 0 {
                receipt.first_seq = seq;
            }
            receipt.last_seq = seq;
            receipt.rows += rows.num_rows();
            hot.push(HotBatch::new(seq, request.kind, arrived_ns, rows.clone()));
        }
        receipts.push(receipt);
    }
    fail::fail_point!("commit::before_write", |_| crate::failpoints::crash());
    let sync = shared.options.durability == Durability::Sync;
    match shared.kv.write(batch, sync) {
        Ok(()) => {
            {
                let mut version = shared.version.write();
                let mut all = Vec::with_capacity(version.hot.len() + hot.len());
                all.extend(version.hot.iter().cloned());
                all.extend(hot);
                version.hot = Arc::new(all);
            }
            fail::fail_point!("commit::after_write", |_| crate::failpoints::crash());
            for (request, receipt) in group.into_iter().zip(receipts) {
                let _ = request.reply.send(Ok(receipt));
            }
        }
        Err(e) => {
            shared.pods.rollback(&new_pods);
            tracing::error!(error = %e, "commit failed");
            let rocks = match e {
                StorageError::RocksDb(r) => Some(r),
                _ => None,
            };
            for request in group {
                let err = match &rocks {
                    Some(r) => StorageError::RocksDb(r.clone()),
                    None => StorageError::ShuttingDown,
                };
                let _ = request.reply.send(Err(err));
            }
        }
    }
}
