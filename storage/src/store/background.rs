//! The background worker: flushes hot rows when there are enough of them (or they are old
//! enough) and then compacts small segments. Errors are logged and retried on the next tick;
//! hot rows stay durable in the WAL meanwhile.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use vigil_model::time::nanos;

use crate::store::{Shared, compaction, flush};

/// How often the worker looks at the hot set without being woken.
const TICK: Duration = Duration::from_millis(500);

pub(crate) struct Worker {
    wake: Sender<Signal>,
    handle: JoinHandle<()>,
}

pub(crate) enum Signal {
    Wake,
    Stop,
}

impl Worker {
    pub fn start(shared: Arc<Shared>) -> Worker {
        let (wake, signals) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name("vigil-flush".into())
            .spawn(move || run(shared, signals))
            .expect("spawning the background thread");
        Worker { wake, handle }
    }

    pub fn waker(&self) -> Sender<Signal> {
        self.wake.clone()
    }

    pub fn wake(&self) {
        let _ = self.wake.try_send(Signal::Wake);
    }

    pub fn stop(self) {
        let _ = self.wake.send(Signal::Stop);
        let _ = self.handle.join();
    }
}

fn run(shared: Arc<Shared>, signals: Receiver<Signal>) {
    loop {
        match signals.recv_timeout(TICK) {
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Signal::Wake) | Err(RecvTimeoutError::Timeout) => {}
        }
        if due(&shared) {
            if let Err(e) = flush::flush(&shared) {
                tracing::error!(error = %e, "background flush failed; will retry");
                continue;
            }
            // Give back the disk space of hot rows now in segments.
            shared.compact_hot();
        }
        if let Err(e) = compaction::compact(&shared, shared.options().compaction_min_inputs) {
            tracing::error!(error = %e, "background compaction failed; will retry");
        }
    }
}

fn due(shared: &Shared) -> bool {
    let v = shared.current();
    let Some(oldest) = v.hot.iter().map(|h| h.arrived_ns).min() else {
        return false;
    };
    let options = shared.options();
    let age = shared.now_ns().saturating_sub(oldest);
    v.hot_rows() >= options.flush_rows
        || v.hot_bytes() >= options.flush_bytes
        || age >= nanos(options.flush_age)
}
