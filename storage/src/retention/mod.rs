//! Retention: how long rows are kept, what metrics become before they go, and the passes
//! that enforce it (`docs/retention.md`).
//!
//! - [`policy`]: rules per kind, namespace and metric name pattern, most specific wins;
//! - [`holds`]: legal holds, rows of a pod in a time range that are never removed;
//! - `rollup`: downsampling rows into min/max/sum/count buckets;
//! - `pass`: one pass over every segment at one instant;
//! - `worker`: the background thread that runs passes on the store's clock.

pub mod holds;
mod pass;
pub mod policy;
mod rollup;
pub(crate) mod worker;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use holds::{Hold, HoldRequest};
pub use pass::RetentionReport;
pub(crate) use pass::run;
pub use policy::{
    DownsampleStep, RetentionPolicy, RetentionRule, RuleSpec, StepSpec, format_duration,
    parse_duration,
};

/// How a store enforces retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionOptions {
    pub policy: RetentionPolicy,
    /// How often the background pass runs (by the store's clock).
    pub check_every: Duration,
    /// After the policy changes, passes only log what they would delete for this long, so
    /// that a mistaken change can be undone before anything is lost.
    pub change_grace: Duration,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        RetentionOptions {
            policy: RetentionPolicy::default(),
            check_every: Duration::from_secs(600),
            change_grace: Duration::from_secs(3600),
        }
    }
}

/// The policy a store last ran with, and since when (RocksDB, `retention/policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    pub fingerprint: String,
    pub since_ns: i64,
}

pub(crate) const KEY_POLICY: &[u8] = b"retention/policy";

/// `2026-11-25T14:00:00Z`.
pub fn format_instant(ns: i64) -> String {
    let t = if ns >= 0 {
        std::time::UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        std::time::UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(t).to_string()
}
