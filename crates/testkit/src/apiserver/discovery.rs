//! Discovery documents: `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`, `/version`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::store::Store;

/// The document at `path`, if it is a discovery path.
pub(super) fn document(store: &Store, path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resources = |group: &str, version: &str| {
        let list: Vec<Value> = store
            .resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .flat_map(|r| {
                let mut out = vec![json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})];
                if r.status {
                    out.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
                }
                out
            })
            .collect();
        let group_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list})
    };
    match segments.as_slice() {
        ["version"] => Some(
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0+cnpg-rs-stand-in", "platform": "linux/amd64"}),
        ),
        ["api"] => Some(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})),
        ["api", "v1"] => Some(resources("", "v1")),
        ["apis"] => {
            let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for r in store.resources.iter().filter(|r| !r.group.is_empty()) {
                let versions = groups.entry(&r.group).or_default();
                if !versions.contains(&r.version.as_str()) {
                    versions.push(&r.version);
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(g, vs)| {
                    let versions: Vec<Value> = vs
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": versions, "preferredVersion": versions.first()})
                })
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", group, version]
            if store.resource_version() > 0
                && store
                    .resources
                    .iter()
                    .any(|r| r.group == *group && r.version == *version) =>
        {
            Some(resources(group, version))
        }
        _ => None,
    }
}
