//! What a Cluster puts into PostgreSQL's configuration (pg_hba and pg_ident lines, parameters,
//! preloaded libraries) and the monitoring queries its ConfigMaps carry. An accepted value
//! must stay one setting or one line: nothing may smuggle a second one in.

use std::collections::BTreeMap;

use cnpg_api::cluster::ClusterSpec;
use cnpg_postgres::conf::{self, Role};
use cnpg_postgres::paths::Paths;
use cnpg_postgres::{hba, monitoring};
use serde_json::json;

fn spec(postgresql: serde_json::Value) -> ClusterSpec {
    serde_json::from_value(json!({ "postgresql": postgresql })).expect("a spec of strings parses")
}

fn assert_clean_lines(text: &str) {
    for line in text.lines() {
        assert!(
            !line.chars().any(char::is_control),
            "a control character in line {line:?}"
        );
    }
}

/// Whether `line` names a pod selector, so that it expands to one line per pod address (none
/// here: the fuzz run has no pods).
fn names_pod_selector(line: &str) -> bool {
    line.find("${podselector:")
        .and_then(|start| line.get(start..))
        .is_some_and(|rest| rest.contains('}'))
}

/// `pg_hba` lines (NUL-separated): accepted, each is exactly one line of the file.
pub fn pg_hba(data: &[u8]) {
    let lines = crate::fields(data, 64);
    let base = hba::pg_hba(&ClusterSpec::default(), 17, &BTreeMap::new()).expect("no user lines");
    let Ok(text) = hba::pg_hba(&spec(json!({ "pg_hba": lines })), 17, &BTreeMap::new()) else {
        return;
    };
    assert_clean_lines(&text);
    let expected = base.lines().count() + lines.iter().filter(|l| !names_pod_selector(l)).count();
    assert_eq!(
        text.lines().count(),
        expected,
        "user lines became more or fewer lines: {lines:?}"
    );
}

/// `pg_ident` lines (NUL-separated): accepted, each is exactly one line of the file.
pub fn pg_ident(data: &[u8]) {
    let lines = crate::fields(data, 64);
    let base = hba::pg_ident(&ClusterSpec::default(), "postgres").expect("no user lines");
    let Ok(text) = hba::pg_ident(&spec(json!({ "pg_ident": lines })), "postgres") else {
        return;
    };
    assert_clean_lines(&text);
    assert_eq!(text.lines().count(), base.lines().count() + lines.len(), "{lines:?}");
}

/// Parameters and preloaded libraries (NUL-separated: name, value, name, value, …, and a
/// last odd field of comma-separated libraries): accepted, custom.conf is one well-formed
/// `name = 'value'` per line.
pub fn parameters(data: &[u8]) {
    let fields = crate::fields(data, 33);
    let mut parameters = BTreeMap::new();
    for pair in fields.chunks_exact(2) {
        if let [name, value] = pair {
            parameters.insert(name.clone(), value.clone());
        }
    }
    let libraries: Vec<String> = if fields.len() % 2 == 1 {
        fields
            .last()
            .map(|l| l.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let spec = spec(json!({ "parameters": parameters, "shared_preload_libraries": libraries }));
    let Ok(rendered) = conf::render(&spec, "pg", 17, &Paths::default(), &Role::Primary) else {
        return;
    };
    for line in rendered.custom_conf.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("not a setting: {line:?}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
            "setting name {name:?}"
        );
        let inner = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or_else(|| panic!("unquoted value in {line:?}"));
        assert!(!inner.chars().any(char::is_control), "a control character in {line:?}");
        assert!(
            inner.replace("''", "").replace("\\\\", "").chars().all(|c| c != '\''),
            "a quote ends the value early in {line:?}"
        );
    }
}

/// A queries document from a monitoring ConfigMap or Secret.
pub fn monitoring_queries(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(queries) = monitoring::parse(text) {
        for query in queries.values() {
            for version in [150_000, 170_004, 180_000] {
                let _ = query.applies(version, true);
            }
        }
    }
}
