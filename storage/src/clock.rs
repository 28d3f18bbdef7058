//! The injected clock. Everything in the store that depends on "now" (flush age, and later
//! retention) asks a [`Clock`], so tests drive time by hand with [`ManualClock`].

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time, in nanoseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + Debug {
    fn now_ns(&self) -> i64;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place allowed to read the system time
    fn now_ns(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        vigil_model::time::nanos(now)
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    pub fn new(now_ns: i64) -> Self {
        ManualClock {
            now: AtomicI64::new(now_ns),
        }
    }

    pub fn set(&self, now_ns: i64) {
        self.now.store(now_ns, Ordering::SeqCst);
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.now
            .fetch_add(vigil_model::time::nanos(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}
