//! Opening a store, which is also crash recovery.
//!
//! The manifest in RocksDB is the truth: a segment file it lists must exist with the recorded
//! size (else the store refuses to open, naming the file); a file it does not list is an
//! orphan from an interrupted flush or compaction and is deleted. Hot records are replayed
//! into memory as they are.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{Result, StorageError};
use crate::kv::Kv;
use crate::options::StoreOptions;
use crate::pod_history::PodHistory;
use crate::pods::PodDictionary;
use crate::segment::Segment;
use crate::segment::meta::parse_file_name;
use crate::store::background::{Signal, Worker};
use crate::store::shared::Recovered;
use crate::store::{Shared, Store, commit, compaction};
use crate::version::{HotBatch, Version};

pub(crate) fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
    options.validate()?;
    if dir.exists() && !dir.is_dir() {
        return Err(StorageError::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "it is a file; a store is a directory",
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    // Segment paths go to the query engine's object store, which reads absolute paths: a
    // relative directory (`--data-dir store`) would be resolved against `/`.
    let dir = &std::fs::canonicalize(dir).map_err(|e| StorageError::io(dir, e))?;
    let segments_dir = dir.join("segments");
    std::fs::create_dir_all(&segments_dir).map_err(|e| StorageError::io(&segments_dir, e))?;
    let kv = Kv::open(&dir.join("kv"), (options.flush_bytes * 2).max(64 << 20))?;
    let loaded = kv.load()?;

    let pods = PodDictionary::from_entries(loaded.pods)
        .map_err(|e| StorageError::corrupted(dir.join("kv"), format!("pod dictionary: {e}")))?;

    let mut segments = Vec::with_capacity(loaded.segments.len());
    let mut live = HashSet::new();
    let mut max_id = None;
    for meta in loaded.segments {
        let path = segments_dir.join(meta.file_name());
        let size = std::fs::metadata(&path)
            .map_err(|e| {
                StorageError::corrupted(
                    &path,
                    format!("segment listed in the manifest cannot be read: {e}"),
                )
            })?
            .len();
        if size != meta.file_size {
            return Err(StorageError::corrupted(
                &path,
                format!(
                    "segment has {size} bytes, the manifest says {} (truncated or overwritten)",
                    meta.file_size
                ),
            ));
        }
        live.insert(meta.id);
        max_id = max_id.max(Some(meta.id));
        segments.push(Arc::new(Segment::new(meta, &segments_dir)));
    }
    let abandoned: HashSet<u64> = loaded
        .pending
        .iter()
        .chain(&loaded.dropped)
        .copied()
        .collect();
    remove_orphans(&segments_dir, &live, &abandoned)?;
    let mut forget = rocksdb::WriteBatch::default();
    for &id in &loaded.pending {
        kv.delete_pending(&mut forget, id);
    }
    for &id in &loaded.dropped {
        kv.delete_dropped(&mut forget, id);
    }
    kv.write(forget, true)?;

    let max_hot_seq = loaded.hot.iter().map(|(seq, _, _)| *seq).max();
    let next_seq = loaded.flushed_seq.max(max_hot_seq.unwrap_or(0)) + 1;
    let now = options.clock.now_ns();
    let hot: Vec<HotBatch> = loaded
        .hot
        .into_iter()
        .map(|(seq, kind, batch)| HotBatch::new(seq, kind, now, batch))
        .collect();
    let next_segment_id = loaded.next_segment_id.max(max_id.map_or(0, |m| m + 1));
    tracing::info!(
        dir = %dir.display(),
        segments = segments.len(),
        hot_batches = hot.len(),
        pods = pods.len(),
        "opened store"
    );

    // A store that enforces in the background records the rules now, starting their grace;
    // one that does not (`vigil retention --dry-run`, tools) only reads the record.
    let policy_since = crate::retention::record_policy(
        &kv,
        &options.retention,
        now,
        if options.background {
            crate::retention::Recording::Background
        } else {
            crate::retention::Recording::ReadOnly
        },
    )?;
    let background = options.background;
    let shared = Arc::new(Shared::new(Recovered {
        dir: dir.to_path_buf(),
        segments_dir,
        options,
        pod_history: PodHistory::from_versions(kv.load_pod_history()?),
        kv,
        pods,
        version: Version {
            hot: Arc::new(hot),
            segments: Arc::new(segments),
        },
        next_seq,
        next_segment_id,
        policy_since,
    }));

    // Metric segments of stores older than format 4 are in (pod, ts) order: rewrite them
    // series-major before anything reads or merges them.
    let rewritten = compaction::rewrite_in_current_order(&shared)?;
    if rewritten > 0 {
        tracing::info!(
            segments = rewritten,
            "upgraded segments to their current row order"
        );
    }

    let worker = background.then(|| Worker::start(Arc::clone(&shared)));
    let waker = worker.as_ref().map(|w| w.waker());
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let committer_shared = Arc::clone(&shared);
    let committer = std::thread::Builder::new()
        .name("vigil-commit".into())
        .spawn(move || {
            commit::run(committer_shared, rx, move || {
                if let Some(w) = &waker {
                    let _ = w.try_send(Signal::Wake);
                }
            })
        })
        .map_err(|e| StorageError::io(dir, e))?;

    let retention = if background && !shared.options().retention.policy.is_empty() {
        Some(
            crate::retention::worker::Worker::start(Arc::clone(&shared))
                .map_err(|e| StorageError::io(dir, e))?,
        )
    } else {
        None
    };

    Ok(Store {
        shared,
        commit_tx: RwLock::new(Some(tx)),
        committer: Mutex::new(Some(committer)),
        background: Mutex::new(worker),
        retention: Mutex::new(retention),
    })
}

/// Deletes the segment files a durable record says are garbage: temporary files, outputs of
/// an interrupted flush or compaction (`pending`), and replaced inputs (`dropped`). A segment
/// file that is neither live nor recorded as garbage means the manifest lost an entry; the
/// store then refuses to open rather than delete data.
fn remove_orphans(
    segments_dir: &Path,
    live: &HashSet<u64>,
    abandoned: &HashSet<u64>,
) -> Result<()> {
    let entries = std::fs::read_dir(segments_dir).map_err(|e| StorageError::io(segments_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(segments_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let garbage = if name.ends_with(".tmp") {
            true
        } else if let Some(id) = parse_file_name(&name) {
            if live.contains(&id) {
                false
            } else if abandoned.contains(&id) {
                true
            } else {
                return Err(StorageError::corrupted(
                    entry.path(),
                    "segment file is in no manifest entry and no record says it was abandoned or \
                     replaced: the RocksDB database in kv/ may have lost data. Move the file out of \
                     segments/ to open the store without it",
                ));
            }
        } else {
            false
        };
        if garbage {
            tracing::info!(file = %name, "removing segment file left by an interrupted flush or compaction");
            std::fs::remove_file(entry.path()).map_err(|e| StorageError::io(entry.path(), e))?;
        }
    }
    Ok(())
}
