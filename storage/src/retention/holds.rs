//! Legal holds: rows of one pod in one time range that retention never deletes or rolls up,
//! whatever the policy says (detections keep the raw data around an alert this way).
//! Holds are durable (RocksDB, `hold/<id>`) and last until released.

use serde::{Deserialize, Serialize};

/// One hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: u64,
    /// Only the pod of this namespace; `None`: the pod of that name in any namespace.
    pub namespace: Option<String>,
    pub pod: String,
    /// First and last `ts` held, inclusive, nanoseconds.
    pub from_ns: i64,
    pub to_ns: i64,
    /// Why: shown by `SHOW HOLDS`, logged when rows are kept because of it.
    pub reason: String,
    /// When it was placed, by the store's clock.
    pub placed_ns: i64,
}

impl Hold {
    /// True when the hold keeps a row of `pod` in `namespace` at `ts`.
    pub fn covers(&self, namespace: Option<&str>, pod: Option<&str>, ts: i64) -> bool {
        ts >= self.from_ns
            && ts <= self.to_ns
            && pod == Some(self.pod.as_str())
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| namespace == Some(ns))
    }

    /// True when the hold may keep a row with `ts` in `[min_ts, max_ts]`.
    pub fn overlaps(&self, min_ts: i64, max_ts: i64) -> bool {
        self.from_ns <= max_ts && self.to_ns >= min_ts
    }
}

/// What to hold; [`crate::Store::place_hold`] gives it an id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    #[serde(default)]
    pub namespace: Option<String>,
    pub pod: String,
    pub from_ns: i64,
    pub to_ns: i64,
    #[serde(default)]
    pub reason: String,
}

pub(crate) const PREFIX_HOLD: &[u8] = b"hold/";
pub(crate) const KEY_NEXT_HOLD_ID: &[u8] = b"next_hold_id";
