//! The pod dictionary: a stable `u32` id for every (cluster, namespace, pod) ever written.
//!
//! Ids index the per-segment pod bitmaps. New ids are assigned only by the committer, and
//! persisted in the same RocksDB write batch as the rows that introduced them, so an id that a
//! durable row or segment refers to is always durable too.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::codec::{Decoder, Encoder};

/// The identity of a pod. Missing cluster or namespace are empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
}

impl PodKey {
    pub fn new(cluster: Option<&str>, namespace: Option<&str>, pod: &str) -> Self {
        PodKey {
            cluster: cluster.unwrap_or_default().to_string(),
            namespace: namespace.unwrap_or_default().to_string(),
            pod: pod.to_string(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.str(&self.cluster).str(&self.namespace).str(&self.pod);
        e.finish()
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<PodKey, String> {
        let mut d = Decoder::new(buf);
        let key = PodKey {
            cluster: d.str("pod cluster")?.to_string(),
            namespace: d.str("pod namespace")?.to_string(),
            pod: d.str("pod name")?.to_string(),
        };
        d.finish("pod key")?;
        Ok(key)
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<PodKey, u32>,
    keys: Vec<PodKey>,
    by_name: HashMap<String, Vec<u32>>,
}

/// The in-memory copy of the persisted dictionary.
#[derive(Debug, Default)]
pub struct PodDictionary {
    inner: RwLock<Inner>,
}

impl PodDictionary {
    /// Rebuilds the dictionary from persisted `(id, key)` pairs. Ids must be dense from 0.
    pub(crate) fn from_entries(mut entries: Vec<(u32, PodKey)>) -> Result<Self, String> {
        entries.sort_by_key(|(id, _)| *id);
        let dict = PodDictionary::default();
        {
            let mut inner = dict.inner.write();
            for (expected, (id, key)) in entries.into_iter().enumerate() {
                if id as usize != expected {
                    return Err(format!(
                        "pod id {id} found where id {expected} was expected"
                    ));
                }
                inner.insert(key);
            }
        }
        Ok(dict)
    }

    pub fn get(&self, key: &PodKey) -> Option<u32> {
        self.inner.read().by_key.get(key).copied()
    }

    /// Every id of a pod with this name, in any cluster or namespace.
    pub fn ids_named(&self, pod: &str) -> Vec<u32> {
        self.inner
            .read()
            .by_name
            .get(pod)
            .cloned()
            .unwrap_or_default()
    }

    pub fn key(&self, id: u32) -> Option<PodKey> {
        self.inner.read().keys.get(id as usize).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.read().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Assigns ids to the keys not yet known, returning the new `(id, key)` pairs.
    pub(crate) fn assign(&self, keys: impl IntoIterator<Item = PodKey>) -> Vec<(u32, PodKey)> {
        let mut inner = self.inner.write();
        let mut new = Vec::new();
        for key in keys {
            if !inner.by_key.contains_key(&key) {
                let id = inner.insert(key.clone());
                new.push((id, key));
            }
        }
        new
    }

    /// Forgets ids assigned by a commit that then failed; they must be the newest ones.
    pub(crate) fn rollback(&self, new: &[(u32, PodKey)]) {
        let mut inner = self.inner.write();
        for (id, key) in new.iter().rev() {
            if inner.keys.len() == *id as usize + 1 {
                inner.keys.pop();
                inner.by_key.remove(key);
                if let Some(ids) = inner.by_name.get_mut(&key.pod) {
                    ids.retain(|i| i != id);
                }
            }
        }
    }

    /// Looks ids up for many keys with one lock acquisition.
    pub(crate) fn with_lookup<R>(&self, f: impl FnOnce(&dyn Fn(&PodKey) -> Option<u32>) -> R) -> R {
        let inner = self.inner.read();
        f(&|k: &PodKey| inner.by_key.get(k).copied())
    }
}

impl Inner {
    fn insert(&mut self, key: PodKey) -> u32 {
        let id = self.keys.len() as u32;
        self.by_name.entry(key.pod.clone()).or_default().push(id);
        self.by_key.insert(key.clone(), id);
        self.keys.push(key);
        id
    }
}

/// The distinct pod keys of a batch in the canonical schema (rows with a NULL pod have none).
pub(crate) fn pod_keys(batch: &arrow::array::RecordBatch) -> Vec<PodKey> {
    use arrow::array::{Array, AsArray, StringArray};
    let strings = |name: &str| -> Option<&StringArray> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
    };
    let Some(pods) = strings("pod") else {
        return Vec::new();
    };
    let clusters = strings("cluster");
    let namespaces = strings("namespace");
    let value = opt_str;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for row in 0..batch.num_rows() {
        if pods.is_null(row) {
            continue;
        }
        let key = (
            value(clusters, row),
            value(namespaces, row),
            pods.value(row),
        );
        if seen.insert(key) {
            out.push(PodKey::new(key.0, key.1, key.2));
        }
    }
    out
}

/// The value of row `i` of an optional string column, `None` when absent or NULL.
pub(crate) fn opt_str(a: Option<&arrow::array::StringArray>, i: usize) -> Option<&str> {
    use arrow::array::Array;
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}
