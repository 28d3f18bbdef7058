//! Writes one immutable segment: a Parquet (zstd) file of rows sorted by (pod, ts), and its
//! index and metadata, built in the same pass.
//!
//! The file is written as `<name>.tmp`, fsynced, renamed into place and the directory fsynced;
//! only then can the manifest refer to it. A crash before the manifest commit leaves an
//! orphan file that `Store::open` deletes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::SignalKind;
use crate::error::{Result, StorageError};
use crate::pods::PodKey;
use crate::schema::kind_schema;
use crate::segment::index::IndexBuilder;
use crate::segment::meta::{SegmentMeta, file_name};
use crate::segment::sort::RowOrder;

/// How segment files are laid out.
#[derive(Debug, Clone)]
pub struct SegmentLayout {
    pub row_group_rows: usize,
    pub page_rows: usize,
    pub zstd_level: i32,
}

impl Default for SegmentLayout {
    fn default() -> Self {
        // Measured (docs/benchmarks.md): one pod's hour is a fraction of a row group, and
        // the page index skips what a point query does not need, so 128 Ki-row groups read
        // 5% more bytes than 32 Ki-row ones for a pod's hour, at the same latency, while
        // scans open 4x fewer column chunks (parquet makes a zstd compressor and
        // decompressor per chunk, 10% of an ASOF join's CPU at 32 Ki). Smaller pages than
        // 8,192 rows cost compression and saved nothing.
        SegmentLayout {
            row_group_rows: 128 * 1024,
            page_rows: 8 * 1024,
            zstd_level: 3,
        }
    }
}

/// A `Write` that counts bytes and computes the CRC-32 of everything written.
struct HashingWriter {
    inner: BufWriter<File>,
    hasher: crc32fast::Hasher,
    written: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Columns written without a dictionary.
const HIGH_CARDINALITY: &[&str] = &[
    "trace_id",
    "span_id",
    "parent_span_id",
    "audit_id",
    "duration_ns",
    "body",
    "message",
    "status_message",
    "request_object",
    "response_object",
];

/// Identity columns of the pod, written uncompressed. (Not `node`: node-level series have
/// no pod, so their rows interleave nodes, which zstd does compress.)
const UNCOMPRESSED_IDENTITY: &[&str] = &["cluster", "namespace", "pod", "container"];

fn kind_schema_columns(kind: SignalKind) -> Vec<&'static str> {
    crate::schema::columns(kind).map(|c| c.name).collect()
}

/// Parquet writer properties of every segment of `kind`.
pub fn writer_properties(kind: SignalKind, layout: &SegmentLayout) -> Result<WriterProperties> {
    let schema = kind_schema(kind);
    let index = |name: &str| schema.index_of(name).map(|i| i as u32);
    let sorting = RowOrder::of(kind)
        .key_columns()
        .iter()
        .map(|name| {
            Ok(SortingColumn {
                column_idx: index(name)? as i32,
                descending: false,
                nulls_first: false,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let zstd = ZstdLevel::try_new(layout.zstd_level)?;
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(zstd))
        .set_max_row_group_row_count(Some(layout.row_group_rows.max(1)))
        .set_data_page_row_count_limit(layout.page_rows.max(1))
        .set_write_batch_size(layout.page_rows.clamp(1, 1024))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(sorting))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("vigil.kind".to_string(), kind.as_str().to_string()),
            KeyValue::new("vigil.format".to_string(), "1".to_string()),
        ]))
        // Timestamps of one pod ascend: deltas pack into a few bits.
        .set_column_dictionary_enabled(ColumnPath::from("ts"), false)
        .set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED);
    // Identifiers and free text are nearly unique per row: a dictionary only adds a page of
    // up to 1 MiB that every read of the column chunk must fetch, however few rows it wants.
    for spec in kind_schema_columns(kind) {
        if HIGH_CARDINALITY.contains(&spec) {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(spec), false);
        }
        // Rows are sorted by pod, so these columns are long runs of a few dictionary
        // indices: zstd saves almost nothing on them, but every column chunk it compresses
        // costs each read a compressor and a decompressor (parquet creates both per chunk).
        if UNCOMPRESSED_IDENTITY.contains(&spec) {
            builder =
                builder.set_column_compression(ColumnPath::from(spec), Compression::UNCOMPRESSED);
        }
    }
    if kind == SignalKind::Metric {
        // Measured on node-exporter-like series in (pod, ts) order (docs/benchmarks.md):
        // plain doubles under zstd beat both a dictionary and BYTE_STREAM_SPLIT.
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from("value"), false)
            .set_column_encoding(ColumnPath::from("value"), Encoding::PLAIN);
    }
    Ok(builder.build())
}

/// An open segment being written.
pub struct SegmentWriter {
    id: u64,
    kind: SignalKind,
    tmp_path: PathBuf,
    final_path: PathBuf,
    writer: Option<ArrowWriter<HashingWriter>>,
    index: IndexBuilder,
    min_ts: i64,
    max_ts: i64,
    rows: u64,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish()
    }
}

impl SegmentWriter {
    pub fn create(dir: &Path, id: u64, kind: SignalKind, layout: &SegmentLayout) -> Result<Self> {
        let final_path = dir.join(file_name(id, kind));
        let tmp_path = final_path.with_extension("parquet.tmp");
        let file = File::create(&tmp_path).map_err(|e| StorageError::io(&tmp_path, e))?;
        let sink = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: crc32fast::Hasher::new(),
            written: 0,
        };
        let writer = ArrowWriter::try_new(
            sink,
            kind_schema(kind),
            Some(writer_properties(kind, layout)?),
        )?;
        Ok(SegmentWriter {
            id,
            kind,
            tmp_path,
            final_path,
            writer: Some(writer),
            index: IndexBuilder::new(kind, RowOrder::of(kind)),
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            rows: 0,
        })
    }

    /// Appends rows. Batches must arrive in the kind's [`RowOrder`], in the kind's canonical schema.
    pub fn write(
        &mut self,
        batch: &RecordBatch,
        pod_id: &dyn Fn(&PodKey) -> Option<u32>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let ts = batch
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or_else(|| StorageError::InvalidBatch {
                kind: self.kind.as_str(),
                column: "ts".to_string(),
                problem: "segment input lacks a nanosecond timestamp column".to_string(),
            })?;
        if let (Some(lo), Some(hi)) = (arrow::compute::min(ts), arrow::compute::max(ts)) {
            self.min_ts = self.min_ts.min(lo);
            self.max_ts = self.max_ts.max(hi);
        }
        debug_assert_eq!(ts.null_count(), 0);
        self.index.add(batch, pod_id);
        if let Some(writer) = self.writer.as_mut() {
            writer.write(batch)?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes, fsyncs and renames the file into place; returns its manifest entry.
    pub fn finish(mut self, window_start: i64, max_seq: u64, level: u8) -> Result<SegmentMeta> {
        let Some(mut writer) = self.writer.take() else {
            return Err(StorageError::corrupted(
                &self.tmp_path,
                "segment writer already finished",
            ));
        };
        let result = (|| {
            writer.flush()?;
            let row_groups = writer
                .flushed_row_groups()
                .iter()
                .map(|rg| rg.num_rows() as u64)
                .collect::<Vec<_>>();
            let mut sink = writer.into_inner()?;
            sink.flush()
                .map_err(|e| StorageError::io(&self.tmp_path, e))?;
            let crc32 = sink.hasher.clone().finalize();
            let file_size = sink.written;
            let file = sink
                .inner
                .into_inner()
                .map_err(|e| StorageError::io(&self.tmp_path, e.into_error()))?;
            crate::failpoints::crash_point!("segment::before_fsync");
            file.sync_all()
                .map_err(|e| StorageError::io(&self.tmp_path, e))?;
            drop(file);
            std::fs::rename(&self.tmp_path, &self.final_path)
                .map_err(|e| StorageError::io(&self.final_path, e))?;
            if let Some(dir) = self.final_path.parent() {
                sync_dir(dir)?;
            }
            Ok(SegmentMeta {
                id: self.id,
                kind: self.kind,
                order: RowOrder::of(self.kind),
                window_start,
                min_ts: self.min_ts,
                max_ts: self.max_ts,
                rows: self.rows,
                file_size,
                crc32,
                max_seq,
                level,
                row_groups,
                index: std::mem::replace(
                    &mut self.index,
                    IndexBuilder::new(self.kind, RowOrder::of(self.kind)),
                )
                .finish(),
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
        result
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // An unfinished segment is abandoned: remove its temporary file.
        if self.writer.is_some() {
            self.writer = None;
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_identity_columns_are_uncompressed_and_the_rest_zstd() {
        let layout = SegmentLayout::default();
        for kind in [SignalKind::Metric, SignalKind::Audit, SignalKind::Log] {
            let props = writer_properties(kind, &layout).expect("properties");
            let codec = |column: &str| props.compression(&ColumnPath::from(column));
            let columns = kind_schema_columns(kind);
            for column in &columns {
                let expected = if UNCOMPRESSED_IDENTITY.contains(column) {
                    Compression::UNCOMPRESSED
                } else {
                    Compression::ZSTD(ZstdLevel::try_new(layout.zstd_level).expect("level"))
                };
                assert_eq!(codec(column), expected, "{kind:?} column {column}");
            }
            assert!(columns.contains(&"pod"), "{kind:?} has a pod column");
        }
        // Node-level series interleave nodes: `node` stays compressed.
        let metric = writer_properties(SignalKind::Metric, &layout).expect("properties");
        assert!(matches!(
            metric.compression(&ColumnPath::from("node")),
            Compression::ZSTD(_)
        ));
    }
}
