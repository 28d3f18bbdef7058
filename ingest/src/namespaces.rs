//! The namespaces a sender may write rows of: a token restricted to namespaces writes only
//! rows of those, record by record, so that one tenant cannot write into (or poison the
//! baselines of) another's.

use std::collections::BTreeSet;

/// Which namespaces a sender may write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Namespaces {
    /// Any namespace, and rows of none (cluster-scoped records).
    #[default]
    Any,
    /// Only these. A record of another namespace, or of none, is refused.
    Only(BTreeSet<String>),
}

impl Namespaces {
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Namespaces {
        Namespaces::Only(names.into_iter().map(Into::into).collect())
    }

    /// Why a record of `namespace` (`None` or empty: cluster-scoped) may not be written.
    pub fn check(&self, namespace: Option<&str>) -> Result<(), String> {
        let Namespaces::Only(allowed) = self else {
            return Ok(());
        };
        let list = || {
            allowed
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match namespace.filter(|n| !n.is_empty()) {
            Some(ns) if allowed.contains(ns) => Ok(()),
            Some(ns) => Err(format!(
                "namespace {ns:?} is not one this token may write (it may write {})",
                list()
            )),
            None => Err(format!(
                "the record names no namespace; this token may write only records of {}",
                list()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_sender_writes_its_namespaces_only() {
        let shop = Namespaces::only(["shop", "web"]);
        assert!(shop.check(Some("shop")).is_ok());
        let e = shop.check(Some("payments")).unwrap_err();
        assert!(
            e.contains("\"payments\"") && e.contains("\"shop\", \"web\""),
            "{e}"
        );
        assert!(shop.check(None).unwrap_err().contains("no namespace"));
        assert!(shop.check(Some("")).is_err());
        assert!(Namespaces::Any.check(None).is_ok());
        assert!(Namespaces::Any.check(Some("payments")).is_ok());
    }
}
