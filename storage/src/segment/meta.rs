//! What the manifest records about one segment, and its byte layout (see `docs/format.md`).

use crate::SignalKind;
use crate::codec::{DecodeResult, Decoder, Encoder};
use crate::segment::index::SegmentIndex;
use crate::segment::sort::RowOrder;

/// Version byte at the start of every encoded [`SegmentMeta`]. Version 2 added the row
/// order; version 1 entries (all in (pod, ts) order) still decode.
pub const SEGMENT_META_VERSION: u8 = 2;

/// The manifest entry of one immutable segment file.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMeta {
    /// Unique, never reused; also the file name.
    pub id: u64,
    pub kind: SignalKind,
    /// The order of the file's rows: [`RowOrder::of`] the kind, except in segments written
    /// before metrics became series-major (`Store::open` rewrites those).
    pub order: RowOrder,
    /// Start of the time window (a multiple of the store's segment window) all rows fall in.
    pub window_start: i64,
    /// Smallest and largest `ts` in the segment, nanoseconds.
    pub min_ts: i64,
    pub max_ts: i64,
    pub rows: u64,
    /// Exact size of the file; a different size on disk means the file is damaged.
    pub file_size: u64,
    /// CRC-32 (IEEE) of the whole file.
    pub crc32: u32,
    /// Highest WAL sequence number whose rows are in this segment.
    pub max_seq: u64,
    /// 0 for a segment written by a flush, n + 1 for one merged from segments of level <= n.
    pub level: u8,
    /// Row count of each row group, in file order.
    pub row_groups: Vec<u64>,
    pub index: SegmentIndex,
}

impl SegmentMeta {
    /// The file name of the segment inside the store's `segments/` directory.
    pub fn file_name(&self) -> String {
        file_name(self.id, self.kind)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(SEGMENT_META_VERSION)
            .u8(self.kind.code())
            .u8(self.order.code())
            .i64(self.window_start)
            .i64(self.min_ts)
            .i64(self.max_ts)
            .u64(self.rows)
            .u64(self.file_size)
            .u32(self.crc32)
            .u64(self.max_seq)
            .u8(self.level)
            .u32(self.row_groups.len() as u32);
        for rows in &self.row_groups {
            e.u64(*rows);
        }
        self.index.encode(&mut e);
        e.finish()
    }

    pub fn decode(id: u64, buf: &[u8]) -> DecodeResult<SegmentMeta> {
        let mut d = Decoder::new(buf);
        let version = d.u8("segment meta version")?;
        if !(1..=SEGMENT_META_VERSION).contains(&version) {
            return Err(format!(
                "segment meta version {version}, expected 1 to {SEGMENT_META_VERSION}"
            ));
        }
        let code = d.u8("segment kind")?;
        let kind =
            SignalKind::from_code(code).ok_or_else(|| format!("unknown kind code {code}"))?;
        let order = match version {
            1 => RowOrder::PodTs,
            _ => {
                let code = d.u8("row order")?;
                RowOrder::from_code(code).ok_or_else(|| format!("unknown row order code {code}"))?
            }
        };
        let window_start = d.i64("window start")?;
        let min_ts = d.i64("min ts")?;
        let max_ts = d.i64("max ts")?;
        let rows = d.u64("row count")?;
        let file_size = d.u64("file size")?;
        let crc32 = d.u32("crc32")?;
        let max_seq = d.u64("max seq")?;
        let level = d.u8("level")?;
        let groups = d.u32("row group count")?;
        let mut row_groups = Vec::with_capacity(groups.min(1 << 16) as usize);
        for _ in 0..groups {
            row_groups.push(d.u64("row group rows")?);
        }
        let index = SegmentIndex::decode(&mut d, order.value_block_rows())?;
        d.finish("segment meta")?;
        if row_groups.iter().sum::<u64>() != rows {
            return Err(format!(
                "row groups hold {} rows, meta says {rows}",
                row_groups.iter().sum::<u64>()
            ));
        }
        Ok(SegmentMeta {
            id,
            kind,
            order,
            window_start,
            min_ts,
            max_ts,
            rows,
            file_size,
            crc32,
            max_seq,
            level,
            row_groups,
            index,
        })
    }
}

/// `{id:016x}-{kind}.parquet`.
pub fn file_name(id: u64, kind: SignalKind) -> String {
    format!("{id:016x}-{}.parquet", kind.as_str())
}

/// Parses a segment file name back into its id, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".parquet")?;
    let (id, kind) = stem.split_once('-')?;
    if !SignalKind::STORED.iter().any(|k| k.as_str() == kind) {
        return None;
    }
    u64::from_str_radix(id, 16).ok()
}
