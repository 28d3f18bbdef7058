//! The process-wide memory guard: when the allocator's resident bytes pass
//! `query.max_resident_bytes`, the running query holding the most memory is cancelled, one
//! at a time, until the server is back under its ceiling. Per-query limits bound what each
//! query reserves; this bounds what all of them, and whatever escapes accounting, add up to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil::{Interrupt, Interrupted, QueryMemory};

/// How often resident memory is read.
const EVERY: Duration = Duration::from_millis(100);
/// After cancelling a query, how long its memory is given to return before the next.
const SETTLE: Duration = Duration::from_secs(1);

/// The queries running now, by an id of their own.
#[derive(Debug, Default)]
pub struct RunningQueries {
    next: AtomicU64,
    queries: Mutex<HashMap<u64, RunningQuery>>,
}

#[derive(Debug)]
struct RunningQuery {
    memory: QueryMemory,
    interrupt: Interrupt,
    started: Instant,
}

impl RunningQueries {
    /// Registers a query; it is forgotten when the returned guard drops.
    pub fn register(self: &Arc<Self>, memory: QueryMemory, interrupt: Interrupt) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let query = RunningQuery {
            memory,
            interrupt,
            started: Instant::now(),
        };
        self.lock().insert(id, query);
        Registered {
            id,
            running: Arc::clone(self),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, RunningQuery>> {
        // A poisoned map is still a map of running queries.
        self.queries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cancels the query holding the most memory (the oldest among equals): its bytes held.
    fn cancel_largest(&self) -> Option<usize> {
        let queries = self.lock();
        let largest = queries.values().max_by(|a, b| {
            a.memory
                .reserved()
                .cmp(&b.memory.reserved())
                .then(b.started.cmp(&a.started))
        })?;
        largest.interrupt.interrupt(Interrupted::MemoryCeiling);
        Some(largest.memory.reserved())
    }
}

/// A registered query; dropping it forgets the query.
#[derive(Debug)]
pub struct Registered {
    id: u64,
    running: Arc<RunningQueries>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.running.lock().remove(&self.id);
    }
}

/// The allocator's resident bytes now, if it can tell.
pub fn resident_bytes() -> Option<u64> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    tikv_jemalloc_ctl::stats::resident::read()
        .ok()
        .map(|b| b as u64)
}

/// The thread that watches resident memory; stopped and joined when dropped.
#[derive(Debug)]
pub struct MemoryCeiling {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MemoryCeiling {
    pub fn start(ceiling: u64, running: Arc<RunningQueries>) -> std::io::Result<MemoryCeiling> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("vigil-memory-ceiling".into())
            .spawn(move || {
                let mut last_cancel: Option<Instant> = None;
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(EVERY);
                    let Some(resident) = resident_bytes() else {
                        continue;
                    };
                    if resident <= ceiling || last_cancel.is_some_and(|t| t.elapsed() < SETTLE) {
                        continue;
                    }
                    if let Some(held) = running.cancel_largest() {
                        tracing::warn!(
                            resident,
                            ceiling,
                            query_reserved = held,
                            "resident memory passed query.max_resident_bytes: cancelled the \
                             query holding the most"
                        );
                        last_cancel = Some(Instant::now());
                    }
                }
            })?;
        Ok(MemoryCeiling {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for MemoryCeiling {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_holding_the_most_memory_is_cancelled_first() {
        let running = Arc::new(RunningQueries::default());
        let small = QueryMemory::new(1 << 20);
        let large = QueryMemory::new(1 << 30);
        let (a, b) = (Interrupt::new(), Interrupt::new());
        let _small = running.register(small, a.clone());
        let _large = running.register(large.clone(), b.clone());
        // Nothing reserved yet: the older one goes first.
        assert_eq!(running.cancel_largest(), Some(0));
        assert_eq!(a.reason(), Some(Interrupted::MemoryCeiling));
        assert_eq!(b.reason(), None);
        let c = Interrupt::new();
        let _third = running.register(QueryMemory::new(1 << 20), c.clone());
        let hold = large.reserve("test", 4096).unwrap();
        assert_eq!(running.cancel_largest(), Some(4096));
        assert_eq!(b.reason(), Some(Interrupted::MemoryCeiling));
        assert_eq!(c.reason(), None);
        drop(hold);
        drop((_small, _large, _third));
        assert!(running.lock().is_empty());
        assert_eq!(running.cancel_largest(), None);
    }

    #[test]
    fn resident_memory_is_read_from_the_allocator() {
        let before = resident_bytes().expect("jemalloc statistics");
        assert!(before > 0);
    }
}
