//! vigil's RocksDB database: which column families exist, how keys and values are laid out,
//! and the handful of reads and writes the store makes. Byte layouts are in `docs/format.md`.
//!
//! Column families:
//! - `default`: store-wide metadata (format version, next segment id, flushed sequence);
//! - `hot`: rows not yet in a segment, one record per acknowledged write, keyed by sequence;
//! - `pods`: the pod dictionary, id -> (cluster, namespace, pod);
//! - `segments`: the manifest, segment id -> [`SegmentMeta`].

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBRecoveryMode, IteratorMode, Options, WriteBatch,
    WriteOptions,
};

use crate::SignalKind;
use crate::error::{Result, StorageError};
use crate::pod_history::PodVersion;
use crate::pods::PodKey;
use crate::schema::kind_schema;
use crate::segment::SegmentMeta;

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 4;
/// Older versions this build opens and upgrades in place: version 3 adds segments of kind
/// code 6 (rollups), which version-2 builds would take for corruption; version 4 writes
/// series-major metric segments with version-2 segment metadata (the row order), which
/// older builds cannot decode. `Store::open` rewrites older metric segments.
const UPGRADES_FROM: &[u32] = &[2, 3];

pub(crate) const CF_HOT: &str = "hot";
pub(crate) const CF_PODS: &str = "pods";
pub(crate) const CF_SEGMENTS: &str = "segments";
pub(crate) const CF_POD_HISTORY: &str = "pod_history";

const KEY_FORMAT_VERSION: &[u8] = b"format_version";
const KEY_NEXT_SEGMENT_ID: &[u8] = b"next_segment_id";
const KEY_FLUSHED_SEQ: &[u8] = b"flushed_seq";
/// `pending/<id>`: a segment file about to be written; deleted by the commit that lists it.
const PREFIX_PENDING: &[u8] = b"pending/";
/// `dropped/<id>`: a segment removed from the manifest whose file may still exist.
const PREFIX_DROPPED: &[u8] = b"dropped/";

/// Version byte of a hot record.
const HOT_RECORD_VERSION: u8 = 1;

/// The opened RocksDB database.
pub(crate) struct Kv {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv").field("path", &self.path).finish()
    }
}

/// What `Kv::load` reads back at open.
pub(crate) struct Loaded {
    pub pods: Vec<(u32, PodKey)>,
    pub segments: Vec<SegmentMeta>,
    pub hot: Vec<(u64, SignalKind, RecordBatch)>,
    pub next_segment_id: u64,
    pub flushed_seq: u64,
    /// Segment ids whose files may exist but were never committed (interrupted writes).
    pub pending: Vec<u64>,
    /// Segment ids removed from the manifest whose files may not be deleted yet.
    pub dropped: Vec<u64>,
}

impl Kv {
    pub fn open(path: &Path, write_buffer_bytes: usize) -> Result<Kv> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A torn last WAL record (a crash mid-write) is dropped; everything before it is kept.
        // Acknowledged sync writes are never in a torn record: they were fsynced first.
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        opts.set_max_total_wal_size(4 * write_buffer_bytes as u64);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        let mut hot = Options::default();
        // Hot rows are deleted by range once they are in a segment; a memtable larger than the
        // flush threshold means most of them never reach an SST file at all.
        hot.set_write_buffer_size(write_buffer_bytes);
        let cfs = vec![
            ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, Options::default()),
            ColumnFamilyDescriptor::new(CF_HOT, hot),
            ColumnFamilyDescriptor::new(CF_PODS, Options::default()),
            ColumnFamilyDescriptor::new(CF_SEGMENTS, Options::default()),
            ColumnFamilyDescriptor::new(CF_POD_HISTORY, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| {
            // RocksDB's lock: another process (a running server) has the store open.
            if e.kind() == rocksdb::ErrorKind::IOError && e.as_ref().contains("lock file") {
                StorageError::InUse {
                    dir: path.parent().unwrap_or(path).to_path_buf(),
                }
            } else {
                StorageError::from(e)
            }
        })?;
        let kv = Kv {
            db,
            path: path.to_path_buf(),
        };
        kv.check_format()?;
        Ok(kv)
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        // The column families are created at open; a missing one is a programming error
        // caught by every test, so this never fails at runtime.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn check_format(&self) -> Result<()> {
        match self.db.get(KEY_FORMAT_VERSION)? {
            None => {
                let mut opts = WriteOptions::default();
                opts.set_sync(true);
                let mut batch = WriteBatch::default();
                batch.put(KEY_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes());
                self.db.write_opt(batch, &opts)?;
                Ok(())
            }
            Some(v) => {
                let found = u32::from_be_bytes(v.as_slice().try_into().map_err(|_| {
                    StorageError::corrupted(&self.path, "format version is not 4 bytes")
                })?);
                if UPGRADES_FROM.contains(&found) {
                    let mut opts = WriteOptions::default();
                    opts.set_sync(true);
                    let mut batch = WriteBatch::default();
                    batch.put(KEY_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes());
                    self.db.write_opt(batch, &opts)?;
                    tracing::info!(
                        from = found,
                        to = FORMAT_VERSION,
                        "upgraded the store format"
                    );
                    return Ok(());
                }
                if found != FORMAT_VERSION {
                    return Err(StorageError::UnsupportedFormat {
                        dir: self.path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                Ok(())
            }
        }
    }

    fn get_u64(&self, key: &[u8]) -> Result<u64> {
        match self.db.get(key)? {
            None => Ok(0),
            Some(v) => Ok(u64::from_be_bytes(v.as_slice().try_into().map_err(
                |_| {
                    StorageError::corrupted(
                        &self.path,
                        format!("{} is not 8 bytes", String::from_utf8_lossy(key)),
                    )
                },
            )?)),
        }
    }

    /// Reads everything the store keeps in memory: dictionary, manifest and hot rows.
    pub fn load(&self) -> Result<Loaded> {
        let mut pods = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_PODS), IteratorMode::Start) {
            let (k, v) = item?;
            let id = u32::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| self.bad("pod dictionary key is not 4 bytes"))?,
            );
            let key = PodKey::decode(&v)
                .map_err(|e| self.bad(format!("pod dictionary entry {id}: {e}")))?;
            pods.push((id, key));
        }
        let mut segments = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_SEGMENTS), IteratorMode::Start)
        {
            let (k, v) = item?;
            let id = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| self.bad("segment key is not 8 bytes"))?,
            );
            let meta = SegmentMeta::decode(id, &v)
                .map_err(|e| self.bad(format!("manifest entry of segment {id:016x}: {e}")))?;
            segments.push(meta);
        }
        let mut hot = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_HOT), IteratorMode::Start) {
            let (k, v) = item?;
            let seq = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| self.bad("hot key is not 8 bytes"))?,
            );
            let (kind, batch) =
                decode_hot(&v).map_err(|e| self.bad(format!("hot record {seq}: {e}")))?;
            hot.push((seq, kind, batch));
        }
        let pending = self.ids_with_prefix(PREFIX_PENDING)?;
        let dropped = self.ids_with_prefix(PREFIX_DROPPED)?;
        Ok(Loaded {
            pending,
            dropped,
            pods,
            segments,
            hot,
            next_segment_id: self.get_u64(KEY_NEXT_SEGMENT_ID)?,
            flushed_seq: self.get_u64(KEY_FLUSHED_SEQ)?,
        })
    }

    fn ids_with_prefix(&self, prefix: &[u8]) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        let mode = IteratorMode::From(prefix, rocksdb::Direction::Forward);
        for item in self.db.iterator(mode) {
            let (k, _) = item?;
            let Some(rest) = k.strip_prefix(prefix) else {
                break;
            };
            let id = u64::from_be_bytes(
                rest.try_into()
                    .map_err(|_| self.bad("segment id key is not 8 bytes"))?,
            );
            ids.push(id);
        }
        Ok(ids)
    }

    fn bad(&self, what: impl Into<String>) -> StorageError {
        StorageError::corrupted(&self.path, what)
    }

    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Writes RocksDB's memtables to table files, so the next open need not replay the WAL.
    /// With `wait` false it only schedules the flush.
    ///
    /// Called after every segment flush too: hot rows just deleted by range are then dropped
    /// by RocksDB's own flush instead of reaching table files, and WAL files are recycled
    /// instead of growing to `max_total_wal_size`.
    pub fn flush_memtables(&self, wait: bool) -> Result<()> {
        let mut opts = rocksdb::FlushOptions::new();
        opts.set_wait(wait);
        let cfs: Vec<&ColumnFamily> = [
            rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
            CF_HOT,
            CF_PODS,
            CF_SEGMENTS,
        ]
        .into_iter()
        .map(|name| self.cf(name))
        .collect();
        self.db.flush_cfs_opt(&cfs, &opts)?;
        Ok(())
    }

    /// Compacts the hot column family so the table files of rows already in segments (and
    /// deleted by range) are rewritten without them, giving the disk space back.
    pub fn compact_hot(&self) {
        self.db
            .compact_range_cf(self.cf(CF_HOT), None::<&[u8]>, None::<&[u8]>);
    }

    pub fn put_hot(&self, batch: &mut WriteBatch, seq: u64, record: &[u8]) {
        batch.put_cf(self.cf(CF_HOT), seq.to_be_bytes(), record);
    }

    /// Every persisted pod version (the `pods` table).
    pub fn load_pod_history(&self) -> Result<Vec<PodVersion>> {
        let mut versions = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_POD_HISTORY), IteratorMode::Start)
        {
            let (_, v) = item?;
            versions.push(
                serde_json::from_slice(&v)
                    .map_err(|e| self.bad(format!("pod history entry: {e}")))?,
            );
        }
        Ok(versions)
    }

    pub fn put_pod_version(&self, batch: &mut WriteBatch, version: &PodVersion) {
        // Serializing plain strings, numbers and maps cannot fail.
        let value = serde_json::to_vec(version).unwrap_or_default();
        batch.put_cf(self.cf(CF_POD_HISTORY), version.storage_key(), value);
    }

    pub fn put_pod(&self, batch: &mut WriteBatch, id: u32, key: &PodKey) {
        batch.put_cf(self.cf(CF_PODS), id.to_be_bytes(), key.encode());
    }

    pub fn put_segment(&self, batch: &mut WriteBatch, meta: &SegmentMeta) {
        batch.put_cf(self.cf(CF_SEGMENTS), meta.id.to_be_bytes(), meta.encode());
    }

    pub fn delete_segment(&self, batch: &mut WriteBatch, id: u64) {
        batch.delete_cf(self.cf(CF_SEGMENTS), id.to_be_bytes());
    }

    /// Deletes the hot records with sequence numbers `<= upto` and records `upto` as flushed.
    pub fn delete_hot_upto(&self, batch: &mut WriteBatch, upto: u64) {
        batch.delete_range_cf(
            self.cf(CF_HOT),
            0u64.to_be_bytes(),
            (upto + 1).to_be_bytes(),
        );
        batch.put(KEY_FLUSHED_SEQ, upto.to_be_bytes());
    }

    /// Records that segment `id` is about to be written (before its file exists).
    pub fn put_pending(&self, batch: &mut WriteBatch, id: u64) {
        batch.put(id_key(PREFIX_PENDING, id), []);
    }

    pub fn delete_pending(&self, batch: &mut WriteBatch, id: u64) {
        batch.delete(id_key(PREFIX_PENDING, id));
    }

    /// Records that segment `id` left the manifest and its file is garbage.
    pub fn put_dropped(&self, batch: &mut WriteBatch, id: u64) {
        batch.put(id_key(PREFIX_DROPPED, id), []);
    }

    pub fn delete_dropped(&self, batch: &mut WriteBatch, id: u64) {
        batch.delete(id_key(PREFIX_DROPPED, id));
    }

    pub fn put_next_segment_id(&self, batch: &mut WriteBatch, next: u64) {
        batch.put(KEY_NEXT_SEGMENT_ID, next.to_be_bytes());
    }
}

impl Kv {
    /// A JSON value kept under `key` in the default column family.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.db.get(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| self.bad(format!("{}: {e}", String::from_utf8_lossy(key)))),
        }
    }

    pub fn put_json<T: serde::Serialize>(&self, batch: &mut WriteBatch, key: &[u8], value: &T) {
        // Plain structs of strings and numbers always serialize.
        batch.put(key, serde_json::to_vec(value).unwrap_or_default());
    }

    /// Every JSON value whose key starts with `prefix`, in key order.
    pub fn scan_json<T: serde::de::DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mode = IteratorMode::From(prefix, rocksdb::Direction::Forward);
        for item in self.db.iterator(mode) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(
                serde_json::from_slice(&v)
                    .map_err(|e| self.bad(format!("{}: {e}", String::from_utf8_lossy(&k))))?,
            );
        }
        Ok(out)
    }

    pub fn delete_key(&self, batch: &mut WriteBatch, key: &[u8]) {
        batch.delete(key);
    }

    /// Rewrites the manifest's table files without the entries retention deleted.
    pub fn compact_manifest(&self) {
        self.db
            .compact_range_cf(self.cf(CF_SEGMENTS), None::<&[u8]>, None::<&[u8]>);
        self.db.compact_range(None::<&[u8]>, None::<&[u8]>);
    }
}

pub(crate) fn id_key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Encodes a hot record: version, kind, then the batch as an Arrow IPC stream.
pub(crate) fn encode_hot(kind: SignalKind, batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    buf.push(HOT_RECORD_VERSION);
    buf.push(kind.code());
    let mut writer = StreamWriter::try_new(&mut buf, batch.schema_ref())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(buf)
}

/// Decodes a hot record; checks the batch has exactly the kind's canonical schema.
pub(crate) fn decode_hot(buf: &[u8]) -> std::result::Result<(SignalKind, RecordBatch), String> {
    let (&version, rest) = buf.split_first().ok_or("empty record")?;
    if version != HOT_RECORD_VERSION {
        return Err(format!(
            "record version {version}, expected {HOT_RECORD_VERSION}"
        ));
    }
    let (&code, ipc) = rest.split_first().ok_or("record has no kind")?;
    let kind = SignalKind::from_code(code).ok_or_else(|| format!("unknown kind code {code}"))?;
    let reader =
        StreamReader::try_new(Cursor::new(ipc), None).map_err(|e| format!("Arrow IPC: {e}"))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| format!("Arrow IPC: {e}"))?);
    }
    let schema = kind_schema(kind);
    let batch = match batches.len() {
        1 => batches.pop().ok_or("no batch")?,
        _ => arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())?,
    };
    if batch.schema().fields() != schema.fields() {
        return Err(format!("batch schema does not match the {kind} schema"));
    }
    let batch = batch
        .with_schema(Arc::clone(&schema))
        .map_err(|e| e.to_string())?;
    Ok((kind, batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_version(path: &Path, version: u32) {
        let kv = Kv::open(path, 1 << 20).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(KEY_FORMAT_VERSION, version.to_be_bytes());
        kv.write(batch, true).unwrap();
    }

    fn version(path: &Path) -> u32 {
        let kv = Kv::open(path, 1 << 20).unwrap();
        let v = kv.db.get(KEY_FORMAT_VERSION).unwrap().unwrap();
        u32::from_be_bytes(v.as_slice().try_into().unwrap())
    }

    #[test]
    fn older_stores_are_upgraded_and_unknown_versions_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv");
        assert_eq!(version(&path), FORMAT_VERSION);
        for older in UPGRADES_FROM {
            set_version(&path, *older);
            assert_eq!(version(&path), FORMAT_VERSION, "opening upgrades {older}");
        }
        set_version(&path, 99);
        let e = Kv::open(&path, 1 << 20).unwrap_err().to_string();
        assert!(
            e.contains("version 99") && e.contains(&format!("reads version {FORMAT_VERSION}")),
            "{e}"
        );
    }
}
