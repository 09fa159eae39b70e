//! Fencing: the `cnpg.io/fencedInstances` annotation on a Cluster names the instances whose
//! PostgreSQL must not run (a JSON array of pod names, `"*"` for all of them). A fenced
//! instance keeps its pod and data; lifting the fence starts it again. The instance manager
//! acts on it, the operator writes it and does not fail over a fenced primary.

use std::collections::{BTreeMap, BTreeSet};

/// The annotation.
pub const FENCED_INSTANCES: &str = "cnpg.io/fencedInstances";
/// The name that fences every instance.
pub const ALL: &str = "*";

/// The fenced instances of a Cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fenced(BTreeSet<String>);

/// The annotation is there but is not a JSON array of names.
#[derive(Debug, thiserror::Error)]
#[error("annotation {FENCED_INSTANCES} is not a JSON array of instance names: {0}")]
pub struct Error(#[source] serde_json::Error);

impl Fenced {
    /// Reads the annotation from a Cluster's annotations; none means nothing is fenced.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Result<Self, Error> {
        match annotations.and_then(|a| a.get(FENCED_INSTANCES)) {
            None => Ok(Self::default()),
            Some(value) => serde_json::from_str::<BTreeSet<String>>(value).map(Self).map_err(Error),
        }
    }

    /// Whether `pod` is fenced, by name or by `*`.
    pub fn contains(&self, pod: &str) -> bool {
        self.0.contains(ALL) || self.0.contains(pod)
    }

    /// The annotation's value for these names (sorted, so writing it is idempotent).
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Adds `pod` (or `*`).
    pub fn insert(&mut self, pod: &str) {
        self.0.insert(pod.to_owned());
    }

    /// Removes `pod` (or `*`); lifting `*` leaves the ones fenced by name fenced.
    pub fn remove(&mut self, pod: &str) {
        self.0.remove(pod);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn annotated(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(FENCED_INSTANCES.to_owned(), value.to_owned())])
    }

    #[test]
    fn names_and_the_wildcard_fence_and_nothing_else_does() {
        let none = Fenced::from_annotations(None).unwrap();
        assert!(!none.contains("pg-1"));
        let other = Fenced::from_annotations(Some(&BTreeMap::from([("a".into(), "b".into())]))).unwrap();
        assert!(other.is_empty());
        let one = Fenced::from_annotations(Some(&annotated(r#"["pg-2"]"#))).unwrap();
        assert!(one.contains("pg-2") && !one.contains("pg-1"));
        let all = Fenced::from_annotations(Some(&annotated(r#"["*"]"#))).unwrap();
        assert!(all.contains("pg-1") && all.contains("pg-9"));
        let empty = Fenced::from_annotations(Some(&annotated("[]"))).unwrap();
        assert!(!empty.contains("pg-1"));
    }

    #[test]
    fn a_malformed_annotation_is_an_error_naming_it() {
        for bad in ["pg-1", r#"{"pg-1": true}"#, "[1]", ""] {
            let err = Fenced::from_annotations(Some(&annotated(bad))).unwrap_err();
            assert!(err.to_string().contains(FENCED_INSTANCES), "{err}");
        }
    }

    #[test]
    fn the_annotation_round_trips_sorted() {
        let mut fenced = Fenced::default();
        fenced.insert("pg-3");
        fenced.insert("pg-1");
        assert_eq!(fenced.to_annotation(), r#"["pg-1","pg-3"]"#);
        fenced.remove("pg-3");
        let back = Fenced::from_annotations(Some(&annotated(&fenced.to_annotation()))).unwrap();
        assert_eq!(back, fenced);
    }
}
