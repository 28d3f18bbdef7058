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

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use vigil_model::time::nanos;

use crate::error::Result;
use crate::kv::Kv;

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

/// How a policy change is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    /// Only read the record (a store without background passes, a dry run).
    ReadOnly,
    /// Record it; background passes wait for the change grace.
    Background,
    /// Record it for an explicit pass that applies the rules at once.
    Explicit,
}

/// Compares the retention policy with the one the store last enforced. The same one keeps
/// its instant; a different (non-empty) one takes effect `now`, and unless `recording` is
/// read-only that is recorded and logged. Returns the instant the policy took effect.
pub(crate) fn record_policy(
    kv: &Kv,
    retention: &RetentionOptions,
    now: i64,
    recording: Recording,
) -> Result<i64> {
    let fingerprint = retention.policy.fingerprint();
    let previous: Option<PolicyRecord> = kv.get_json(KEY_POLICY)?;
    if let Some(p) = &previous
        && p.fingerprint == fingerprint
    {
        return Ok(p.since_ns);
    }
    // Without rules nothing is deleted, and the record of the rules last enforced stays.
    if retention.policy.is_empty() {
        return Ok(previous.map_or(now, |p| p.since_ns));
    }
    let previous_rules = previous
        .as_ref()
        .map_or("keep everything", |p| p.fingerprint.as_str());
    match recording {
        Recording::ReadOnly => return Ok(now),
        Recording::Background => {
            let grace = nanos(retention.change_grace);
            tracing::warn!(
                previous = previous_rules,
                now = %fingerprint,
                grace = %format_duration(retention.change_grace),
                deletes_from = %format_instant(now.saturating_add(grace)),
                "retention rules changed; background passes only log what they would delete \
                 until the grace ends"
            );
        }
        Recording::Explicit => tracing::warn!(
            previous = previous_rules,
            now = %fingerprint,
            "retention rules changed; this explicit pass applies them now"
        ),
    }
    let mut batch = WriteBatch::default();
    kv.put_json(
        &mut batch,
        KEY_POLICY,
        &PolicyRecord {
            fingerprint,
            since_ns: now,
        },
    );
    kv.write(batch, true)?;
    Ok(now)
}

/// `2026-11-25T14:00:00Z`.
pub fn format_instant(ns: i64) -> String {
    let t = if ns >= 0 {
        std::time::UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        std::time::UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(t).to_string()
}
