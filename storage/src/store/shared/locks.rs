//! The store's maintenance locks and the one order they are taken in.
//!
//! Each maintenance task (flush, compaction, retention, and the holds retention reads) runs
//! under its own lock, so a long retention pass does not hold up the flushes writers wait
//! for. **Lock order:** `Retention` before `Flush` before `Compaction`; the version lock is
//! taken last, inside [`super::Shared::publish`] only, and never held while another is
//! taken. A retention pass flushes and then merges, so it holds `Retention` while taking the
//! other two; nothing takes `Retention` while holding `Flush` or `Compaction`. Debug builds
//! check the order on every acquisition and panic, naming both locks, when it is broken.

use parking_lot::{Mutex, MutexGuard};

/// A maintenance task, in lock order: a task's lock is taken only while holding locks of
/// earlier tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Task {
    /// Retention passes, and placing or releasing the holds they read.
    Retention,
    /// Flushing hot rows into segments.
    Flush,
    /// Merging segments, and removing them (retention takes it for its manifest edits).
    Compaction,
}

/// One lock per [`Task`].
#[derive(Debug, Default)]
pub(crate) struct Locks {
    retention: Mutex<()>,
    flush: Mutex<()>,
    compaction: Mutex<()>,
}

/// A held maintenance lock; released on drop.
#[must_use = "the lock is released when this is dropped"]
pub(crate) struct Held<'a> {
    _guard: MutexGuard<'a, ()>,
    #[cfg(debug_assertions)]
    task: Task,
}

impl std::fmt::Debug for Held<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

impl Locks {
    /// Takes `task`'s lock, waiting for it.
    pub fn lock(&self, task: Task) -> Held<'_> {
        #[cfg(debug_assertions)]
        order::check(task);
        let mutex = match task {
            Task::Retention => &self.retention,
            Task::Flush => &self.flush,
            Task::Compaction => &self.compaction,
        };
        let guard = mutex.lock();
        #[cfg(debug_assertions)]
        order::push(task);
        Held {
            _guard: guard,
            #[cfg(debug_assertions)]
            task,
        }
    }
}

#[cfg(debug_assertions)]
impl Drop for Held<'_> {
    fn drop(&mut self) {
        order::pop(self.task);
    }
}

/// The locks each thread holds, to check the order (debug builds only).
#[cfg(debug_assertions)]
mod order {
    use std::cell::RefCell;

    use super::Task;

    thread_local! {
        static HELD: RefCell<Vec<Task>> = const { RefCell::new(Vec::new()) };
    }

    pub fn check(task: Task) {
        HELD.with(|held| {
            if let Some(later) = held.borrow().iter().find(|h| **h >= task) {
                panic!(
                    "lock order violated: taking the {task:?} lock while holding the {later:?} \
                     lock (the order is Retention, Flush, Compaction)"
                );
            }
        });
    }

    pub fn push(task: Task) {
        HELD.with(|held| held.borrow_mut().push(task));
    }

    pub fn pop(task: Task) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|h| *h == task) {
                held.remove(at);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_taken_in_order_nest() {
        let locks = Locks::default();
        let retention = locks.lock(Task::Retention);
        let flush = locks.lock(Task::Flush);
        drop(flush);
        let compaction = locks.lock(Task::Compaction);
        drop(compaction);
        drop(retention);
        // Released in any order, then taken again.
        let flush = locks.lock(Task::Flush);
        let compaction = locks.lock(Task::Compaction);
        drop(flush);
        drop(compaction);
        let _retention = locks.lock(Task::Retention);
    }

    #[cfg(debug_assertions)]
    #[test]
    fn a_lock_taken_out_of_order_panics_naming_both() {
        let locks = std::sync::Arc::new(Locks::default());
        let inner = std::sync::Arc::clone(&locks);
        let panic = std::thread::spawn(move || {
            let _compaction = inner.lock(Task::Compaction);
            let _retention = inner.lock(Task::Retention);
        })
        .join()
        .expect_err("out of order");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("Retention") && message.contains("Compaction"),
            "{message}"
        );
        // The lock the panicking thread held was released as it unwound.
        let _compaction = locks.lock(Task::Compaction);
    }
}
