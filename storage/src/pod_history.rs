//! The history of every pod the store has heard of: what it was (node, IPs, images, service
//! account, owner, labels) over which interval, for "which pod held this IP, or ran this
//! image, at that moment?".
//!
//! Observations come from the ingest paths (OTLP resources, audit events carrying pod
//! objects, Kubernetes events). A pod's history is a list of versions ordered by
//! `valid_from`. An observation at or after the current version's start that changes a field
//! it states closes the current version (`valid_to`) and opens a new one; one that changes
//! nothing only moves `last_seen`. An observation older than the current version (late
//! arrival) fills the fields still unknown in the version that covered its time and extends
//! the pod's first sighting, but never rewrites history. Versions are persisted in RocksDB
//! (column family `pod_history`) with the write's durability.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

pub use vigil_model::PodObservation;

use crate::pods::PodKey;

/// The state of one pod over `[valid_from, valid_to)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodVersion {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub uid: Option<String>,
    pub node: Option<String>,
    pub pod_ips: Vec<String>,
    pub images: Vec<String>,
    pub image_ids: Vec<String>,
    pub service_account: Option<String>,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub valid_from: i64,
    /// `None` while this is the pod's current version.
    pub valid_to: Option<i64>,
    /// The pod's first sighting (the same in every version of a pod).
    pub first_seen: i64,
    /// The latest observation that confirmed this version.
    pub last_seen: i64,
    /// Sources that contributed to this version.
    pub sources: BTreeSet<String>,
    /// `last_seen` as last persisted: moves of `last_seen` alone are persisted once they
    /// reach [`LAST_SEEN_PERSIST_NS`], so a steady stream does not write on every request.
    #[serde(skip)]
    persisted_last_seen: i64,
}

/// How far `last_seen` may run ahead of its persisted value (one minute): after a crash it
/// may come back up to this much older; every other field is persisted at once.
pub const LAST_SEEN_PERSIST_NS: i64 = 60_000_000_000;

impl PodVersion {
    fn key(&self) -> PodKey {
        PodKey {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
        }
    }

    /// The RocksDB key: the pod key, then `valid_from` with the sign bit flipped (so that
    /// byte order is time order).
    pub(crate) fn storage_key(&self) -> Vec<u8> {
        let mut key = self.key().encode();
        key.extend_from_slice(&((self.valid_from as u64) ^ (1 << 63)).to_be_bytes());
        key
    }

    /// This version with what `obs` states applied; `true` if a field changed.
    fn apply(&self, obs: &PodObservation) -> (PodVersion, bool) {
        let mut next = self.clone();
        let mut changed = false;
        fn set<T: PartialEq + Clone>(slot: &mut T, value: Option<&T>, changed: &mut bool) {
            if let Some(v) = value
                && slot != v
            {
                *slot = v.clone();
                *changed = true;
            }
        }
        let some = |v: &Option<String>| v.clone().map(Some);
        set(&mut next.uid, some(&obs.uid).as_ref(), &mut changed);
        set(&mut next.node, some(&obs.node).as_ref(), &mut changed);
        set(&mut next.pod_ips, obs.pod_ips.as_ref(), &mut changed);
        if obs.source == "audit" {
            // A pod object lists every container: it replaces the lists.
            set(&mut next.images, obs.images.as_ref(), &mut changed);
            set(&mut next.image_ids, obs.image_ids.as_ref(), &mut changed);
        } else {
            // A resource names one container: its image adds to what is known.
            for (list, new) in [
                (&mut next.images, &obs.images),
                (&mut next.image_ids, &obs.image_ids),
            ] {
                for item in new.iter().flatten() {
                    if !list.contains(item) {
                        list.push(item.clone());
                        changed = true;
                    }
                }
            }
        }
        set(
            &mut next.service_account,
            some(&obs.service_account).as_ref(),
            &mut changed,
        );
        set(
            &mut next.owner_kind,
            some(&obs.owner_kind).as_ref(),
            &mut changed,
        );
        set(
            &mut next.owner_name,
            some(&obs.owner_name).as_ref(),
            &mut changed,
        );
        if obs.source == "audit" {
            set(&mut next.labels, obs.labels.as_ref(), &mut changed);
        } else {
            for (k, v) in obs.labels.iter().flatten() {
                if next.labels.get(k) != Some(v) {
                    next.labels.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
        }
        (next, changed)
    }

    /// Fills only what this version does not know yet; `true` if anything was filled.
    fn fill(&mut self, obs: &PodObservation) -> bool {
        let mut filled = false;
        fn fill_opt(slot: &mut Option<String>, value: &Option<String>, filled: &mut bool) {
            if slot.is_none() && value.is_some() {
                slot.clone_from(value);
                *filled = true;
            }
        }
        fn fill_vec<T: Clone>(slot: &mut T, value: Option<&T>, empty: bool, filled: &mut bool) {
            if empty && let Some(v) = value {
                *slot = v.clone();
                *filled = true;
            }
        }
        fill_opt(&mut self.uid, &obs.uid, &mut filled);
        fill_opt(&mut self.node, &obs.node, &mut filled);
        fill_opt(&mut self.service_account, &obs.service_account, &mut filled);
        fill_opt(&mut self.owner_kind, &obs.owner_kind, &mut filled);
        fill_opt(&mut self.owner_name, &obs.owner_name, &mut filled);
        let e = self.pod_ips.is_empty();
        fill_vec(&mut self.pod_ips, obs.pod_ips.as_ref(), e, &mut filled);
        let e = self.images.is_empty();
        fill_vec(&mut self.images, obs.images.as_ref(), e, &mut filled);
        let e = self.image_ids.is_empty();
        fill_vec(&mut self.image_ids, obs.image_ids.as_ref(), e, &mut filled);
        let e = self.labels.is_empty();
        fill_vec(&mut self.labels, obs.labels.as_ref(), e, &mut filled);
        filled
    }
}

/// Every pod's versions, in memory; the store persists what [`PodHistory::observe`] changes.
#[derive(Debug, Default)]
pub(crate) struct PodHistory {
    pods: RwLock<HashMap<PodKey, Vec<PodVersion>>>,
    /// Held from applying observations until their versions are persisted, so that an older
    /// copy of a version is never written after a newer one.
    pub persist: Mutex<()>,
}

impl PodHistory {
    pub fn from_versions(versions: Vec<PodVersion>) -> PodHistory {
        let mut pods: HashMap<PodKey, Vec<PodVersion>> = HashMap::new();
        for mut v in versions {
            v.persisted_last_seen = v.last_seen;
            pods.entry(v.key()).or_default().push(v);
        }
        for list in pods.values_mut() {
            list.sort_by_key(|v| v.valid_from);
        }
        PodHistory {
            pods: RwLock::new(pods),
            persist: Mutex::new(()),
        }
    }

    /// Applies observations; returns the versions to persist (new or changed).
    pub fn observe(&self, observations: &[PodObservation]) -> Vec<PodVersion> {
        let mut changed: BTreeMap<Vec<u8>, PodVersion> = BTreeMap::new();
        let mut pods = self.pods.write();
        for obs in observations {
            if obs.pod.is_empty() {
                continue;
            }
            let key = PodKey::new(obs.cluster.as_deref(), obs.namespace.as_deref(), &obs.pod);
            let list = pods.entry(key.clone()).or_default();
            let mut touched: Vec<usize> = Vec::new();
            match list.last().map(|v| v.valid_from) {
                None => {
                    let (version, _) = PodVersion {
                        cluster: key.cluster.clone(),
                        namespace: key.namespace.clone(),
                        pod: key.pod.clone(),
                        valid_from: obs.ts_ns,
                        first_seen: obs.ts_ns,
                        last_seen: obs.ts_ns,
                        ..Default::default()
                    }
                    .apply(obs);
                    list.push(version);
                    touched.push(0);
                }
                Some(start) if obs.ts_ns >= start => {
                    let last = list.len() - 1;
                    let (next, differs) = list[last].apply(obs);
                    if differs && obs.ts_ns > start {
                        list[last].valid_to = Some(obs.ts_ns);
                        let mut next = next;
                        next.valid_from = obs.ts_ns;
                        next.valid_to = None;
                        next.last_seen = obs.ts_ns;
                        next.sources = BTreeSet::new();
                        list.push(next);
                        touched.extend([last, last + 1]);
                    } else {
                        // Same start: the two observations describe one moment; merge them.
                        let current = &mut list[last];
                        if differs {
                            let valid_from = current.valid_from;
                            *current = PodVersion { valid_from, ..next };
                        }
                        if obs.ts_ns > current.last_seen || differs {
                            current.last_seen = current.last_seen.max(obs.ts_ns);
                            if differs
                                || current
                                    .last_seen
                                    .saturating_sub(current.persisted_last_seen)
                                    >= LAST_SEEN_PERSIST_NS
                            {
                                touched.push(last);
                            }
                        }
                    }
                }
                Some(_) => {
                    // Late: fill what the version covering that time did not know.
                    let index = list
                        .iter()
                        .rposition(|v| v.valid_from <= obs.ts_ns)
                        .unwrap_or(0);
                    if list[index].fill(obs) {
                        touched.push(index);
                    }
                    if obs.ts_ns < list[0].first_seen {
                        for (i, v) in list.iter_mut().enumerate() {
                            v.first_seen = obs.ts_ns;
                            touched.push(i);
                        }
                    }
                }
            }
            let last = list.len() - 1;
            if list[last].sources.insert(obs.source.clone()) {
                touched.push(last);
            }
            for i in touched {
                let v = &mut list[i];
                v.persisted_last_seen = v.last_seen;
                changed.insert(v.storage_key(), v.clone());
            }
        }
        changed.into_values().collect()
    }

    /// Every version of every pod, ordered by (cluster, namespace, pod, valid_from).
    pub fn snapshot(&self) -> Vec<PodVersion> {
        let pods = self.pods.read();
        let mut all: Vec<PodVersion> = pods.values().flatten().cloned().collect();
        all.sort_by(|a, b| {
            (&a.cluster, &a.namespace, &a.pod, a.valid_from).cmp(&(
                &b.cluster,
                &b.namespace,
                &b.pod,
                b.valid_from,
            ))
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(ts: i64, node: Option<&str>, ips: Option<&[&str]>) -> PodObservation {
        PodObservation {
            ts_ns: ts,
            namespace: Some("shop".into()),
            pod: "web-1".into(),
            node: node.map(str::to_string),
            pod_ips: ips.map(|i| i.iter().map(|s| s.to_string()).collect()),
            source: "otlp".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_change_opens_a_version_and_repeats_only_move_last_seen() {
        let h = PodHistory::default();
        h.observe(&[obs(10, Some("n1"), Some(&["10.0.0.1"]))]);
        h.observe(&[obs(20, Some("n1"), None)]);
        let all = h.snapshot();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].first_seen, all[0].last_seen), (10, 20));
        // The IP moves: a new version from 30, the old one closed at 30.
        let changed = h.observe(&[obs(30, None, Some(&["10.0.0.9"]))]);
        assert_eq!(changed.len(), 2);
        let all = h.snapshot();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].valid_to, Some(30));
        assert_eq!(all[1].valid_from, 30);
        assert_eq!(all[1].pod_ips, vec!["10.0.0.9"]);
        assert_eq!(
            all[1].node.as_deref(),
            Some("n1"),
            "unstated fields carry over"
        );
        assert_eq!(all[1].first_seen, 10);
    }

    #[test]
    fn last_seen_alone_is_persisted_at_most_once_a_minute() {
        let h = PodHistory::default();
        assert_eq!(h.observe(&[obs(0, Some("n1"), None)]).len(), 1);
        assert!(
            h.observe(&[obs(1_000_000_000, Some("n1"), None)])
                .is_empty()
        );
        assert_eq!(h.snapshot()[0].last_seen, 1_000_000_000, "exact in memory");
        let persisted = h.observe(&[obs(LAST_SEEN_PERSIST_NS, Some("n1"), None)]);
        assert_eq!(persisted.len(), 1);
        assert_eq!(persisted[0].last_seen, LAST_SEEN_PERSIST_NS);
        // A change is persisted at once.
        assert_eq!(
            h.observe(&[obs(LAST_SEEN_PERSIST_NS + 1, Some("n2"), None)])
                .len(),
            2
        );
    }

    #[test]
    fn one_container_at_a_time_adds_images_instead_of_flipping_versions() {
        let h = PodHistory::default();
        let image = |ts, i: &str| PodObservation {
            images: Some(vec![i.to_string()]),
            ..obs(ts, None, None)
        };
        h.observe(&[
            image(1, "app:1"),
            image(2, "sidecar:2"),
            image(3, "app:1"),
            image(4, "sidecar:2"),
        ]);
        let all = h.snapshot();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[1].images, vec!["app:1", "sidecar:2"]);
    }

    #[test]
    fn late_observations_fill_gaps_without_rewriting_history() {
        let h = PodHistory::default();
        h.observe(&[obs(100, None, Some(&["10.0.0.1"]))]);
        h.observe(&[obs(50, Some("n2"), Some(&["10.9.9.9"]))]);
        let all = h.snapshot();
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].pod_ips,
            vec!["10.0.0.1"],
            "known fields are not overwritten"
        );
        assert_eq!(all[0].node.as_deref(), Some("n2"));
        assert_eq!(all[0].first_seen, 50);
    }
}
