//! The background retention thread: a pass every `check_every` of the store's clock, dry
//! while the policy is within its change grace.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use vigil_model::time::nanos;

use crate::retention::run;
use crate::store::Shared;

/// How often the thread looks at the clock.
const TICK: Duration = Duration::from_millis(250);

pub(crate) struct Worker {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Worker {
    pub fn start(shared: Arc<Shared>) -> std::io::Result<Worker> {
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let handle = std::thread::Builder::new()
            .name("vigil-retention".into())
            .spawn(move || work(&shared, &stopped))?;
        Ok(Worker { stop, handle })
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

fn work(shared: &Shared, stopped: &Receiver<()>) {
    let every = nanos(shared.options().retention.check_every);
    let grace = nanos(shared.options().retention.change_grace);
    let mut last: Option<i64> = None;
    loop {
        match stopped.recv_timeout(TICK) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if shared.closing() {
            return;
        }
        let now = shared.now_ns();
        if last.is_some_and(|l| now.saturating_sub(l) < every) {
            continue;
        }
        last = Some(now);
        let since = shared.policy_since();
        let in_grace = now < since.saturating_add(grace);
        match run(shared, in_grace) {
            Ok(report) if in_grace && (report.total_deleted() > 0 || report.rows_rolled_up > 0) => {
                tracing::warn!(
                    rows_deleted = report.total_deleted(),
                    rows_rolled_up = report.rows_rolled_up,
                    starts = %crate::retention::format_instant(since.saturating_add(grace)),
                    "retention policy changed recently: nothing is deleted before its grace ends"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention pass failed; will retry"),
        }
    }
}
