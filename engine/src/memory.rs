//! The memory of one query: a pool its sorts, joins and aggregates reserve from, sized by
//! the query's limit, which also bounds what one call of a growing scalar function may
//! produce and accounts the result batches the query hands out.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// One query's memory: cheap to clone, shared with whoever watches how much it holds.
#[derive(Debug, Clone)]
pub struct QueryMemory {
    pool: Arc<dyn MemoryPool>,
    limit: usize,
}

impl QueryMemory {
    /// A pool of `limit` bytes (at least 1). An error names the three largest consumers.
    pub fn new(limit: usize) -> QueryMemory {
        let limit = limit.max(1);
        let pool = TrackConsumersPool::new(
            GreedyMemoryPool::new(limit),
            NonZeroUsize::new(3).expect("3 is not zero"),
        );
        QueryMemory {
            pool: Arc::new(pool),
            limit,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    pub fn reserved(&self) -> usize {
        self.pool.reserved()
    }

    /// Reserves `bytes` for `consumer` (memory the caller holds for the query, such as rows
    /// it collects), or fails as an operator over the limit does. Dropping the reservation
    /// gives the bytes back.
    pub fn reserve(
        &self,
        consumer: &str,
        bytes: usize,
    ) -> datafusion::error::Result<MemoryReservation> {
        let reservation = MemoryConsumer::new(consumer).register(&self.pool);
        reservation.try_grow(bytes)?;
        Ok(reservation)
    }

    pub(crate) fn pool(&self) -> Arc<dyn MemoryPool> {
        Arc::clone(&self.pool)
    }

    /// `stream` with each batch it hands out reserved in the pool until the next one comes:
    /// a result batch over what is left of the limit ends the query.
    pub(crate) fn account(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let reservation = MemoryConsumer::new("query result").register(&self.pool);
        let accounted = stream.map(move |batch| {
            let batch = batch?;
            reservation.try_resize(batch.get_array_memory_size())?;
            Ok(batch)
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, accounted))
    }
}
