//! Legal holds: rows of one pod in one time range that retention never deletes or rolls up,
//! whatever the policy says (detections keep the raw data around an alert this way).
//! Holds are durable (RocksDB, `hold/<id>`, and `next_hold_id`) and last until released;
//! they are placed and released by manifest edits (`Cause::Hold`), read here.

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kv::{Kv, id_key};

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
    /// Why: shown by `SHOW HOLDS`.
    pub reason: String,
    /// When it was placed, by the store's clock.
    pub placed_ns: i64,
}

impl Hold {
    /// True when the hold keeps a row of `pod` in `namespace` covering `[from, to]` (a raw
    /// row: `from == to == ts`; a rollup row: its whole bucket).
    pub fn covers(&self, namespace: Option<&str>, pod: Option<&str>, from: i64, to: i64) -> bool {
        to >= self.from_ns
            && from <= self.to_ns
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

const PREFIX_HOLD: &[u8] = b"hold/";
const KEY_NEXT_HOLD_ID: &[u8] = b"next_hold_id";

/// Every hold in effect, by id.
pub(crate) fn load(kv: &Kv) -> Result<Vec<Hold>> {
    kv.scan_json(PREFIX_HOLD)
}

/// The id the next hold gets (ids are never reused).
pub(crate) fn next_id(kv: &Kv) -> Result<u64> {
    Ok(kv.get_json::<u64>(KEY_NEXT_HOLD_ID)?.unwrap_or(1))
}

/// Writes a hold (whose id came from [`next_id`]) and moves the next id past it.
pub(crate) fn put(kv: &Kv, batch: &mut WriteBatch, hold: &Hold) {
    kv.put_json(batch, &id_key(PREFIX_HOLD, hold.id), hold);
    kv.put_json(batch, KEY_NEXT_HOLD_ID, &(hold.id + 1));
}

/// Deletes a hold.
pub(crate) fn delete(kv: &Kv, batch: &mut WriteBatch, id: u64) {
    kv.delete_key(batch, &id_key(PREFIX_HOLD, id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_covers_rows_and_buckets_that_touch_its_range() {
        let hold = Hold {
            id: 1,
            namespace: Some("shop".into()),
            pod: "web-1".into(),
            from_ns: 100,
            to_ns: 200,
            reason: String::new(),
            placed_ns: 0,
        };
        let web = Some("web-1");
        assert!(hold.covers(Some("shop"), web, 100, 100));
        assert!(hold.covers(Some("shop"), web, 200, 200));
        assert!(!hold.covers(Some("shop"), web, 201, 201));
        assert!(!hold.covers(Some("other"), web, 150, 150));
        assert!(!hold.covers(Some("shop"), Some("web-2"), 150, 150));
        assert!(!hold.covers(Some("shop"), None, 150, 150));
        // A bucket [0, 119] holds samples of 100..119.
        assert!(hold.covers(Some("shop"), web, 0, 119));
        assert!(!hold.covers(Some("shop"), web, 0, 99));
        let anywhere = Hold {
            namespace: None,
            ..hold
        };
        assert!(anywhere.covers(Some("other"), web, 150, 150));
    }
}
