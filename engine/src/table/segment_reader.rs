//! Readers of segment files whose metadata always carries the page index.
//!
//! DataFusion's Parquet opener first asks for the footer alone and loads the page index
//! (column and offset indexes) only when a predicate can use it; loaded that way, the index is
//! parsed again on every open and never reaches the session's metadata cache. Segment files
//! never change and always have a page index, and vigil's row selections need the offset
//! index to skip pages, so these readers ask for both at once: the first open of a segment
//! caches its footer with the page index, and later opens parse nothing.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

/// Wraps the cached reader factory so every footer read includes the page index.
#[derive(Debug)]
pub struct SegmentReaderFactory {
    inner: CachedParquetFileReaderFactory,
}

impl SegmentReaderFactory {
    pub fn new(inner: CachedParquetFileReaderFactory) -> Self {
        SegmentReaderFactory { inner }
    }
}

impl ParquetFileReaderFactory for SegmentReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::common::Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(SegmentReader { inner }))
    }
}

struct SegmentReader {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for SegmentReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let options = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        async move { self.inner.get_metadata(Some(&options)).await }.boxed()
    }
}
