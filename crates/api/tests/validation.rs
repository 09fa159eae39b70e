//! Every validation rule, with an object that passes it and one that breaks it. The cases live
//! in `tests/rules/<kind>.yaml`: a fixture and JSON merge patches (RFC 7386) on top of it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::path::PathBuf;

use cnpg_api::defaults::{self, OperatorDefaults};
use cnpg_api::validation::{self, FieldError};
use cnpg_api::{Backup, Cluster, ClusterImageCatalog, Pooler, ScheduledBackup};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Rules {
    fixture: Value,
    create: Vec<Case>,
    #[serde(default)]
    update: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    rule: String,
    /// For updates: the stored object, as a patch on the fixture.
    #[serde(default)]
    old: Value,
    good: Value,
    bad: Value,
    path: String,
    says: String,
}

fn rules(kind: &str) -> Rules {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("tests/rules");
    let text = std::fs::read_to_string(dir.join(format!("{kind}.yaml"))).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn patched<T: DeserializeOwned>(fixture: &Value, patch: &Value) -> T {
    let mut value = fixture.clone();
    json_patch::merge(&mut value, patch);
    serde_json::from_value(value).unwrap()
}

/// Exactly one error, at `path`, saying `says`, printed as `path: message`.
#[track_caller]
fn refused(rule: &str, errors: &[FieldError], path: &str, says: &str) {
    assert_eq!(errors.len(), 1, "{rule}: expected one error at {path}, got {errors:#?}");
    let error = &errors[0];
    assert_eq!(error.path, path, "{rule}: {error}");
    assert!(
        error.message.contains(says),
        "{rule}: {:?} does not say {says:?}",
        error.message
    );
    assert!(error.to_string().starts_with(&format!("{path}: ")), "{rule}: {error}");
}

/// Runs every create case of `kind` through its validator.
fn check<T: DeserializeOwned>(kind: &str, create: fn(&T) -> Vec<FieldError>) {
    let rules = rules(kind);
    assert!(!rules.create.is_empty(), "{kind}: no cases");
    assert!(
        create(&patched(&rules.fixture, &json!({}))).is_empty(),
        "{kind}: the fixture itself is invalid"
    );
    for case in &rules.create {
        let errors = create(&patched(&rules.fixture, &case.good));
        assert!(
            errors.is_empty(),
            "{}: the valid case was refused: {errors:#?}",
            case.rule
        );
        refused(
            &case.rule,
            &create(&patched(&rules.fixture, &case.bad)),
            &case.path,
            &case.says,
        );
    }
}

/// Runs every update case of `kind`: `old` is stored, `good` and `bad` replace it.
fn check_updates<T: DeserializeOwned>(kind: &str, update: fn(&T, &T) -> Vec<FieldError>) {
    let rules = rules(kind);
    assert!(!rules.update.is_empty(), "{kind}: no update cases");
    for case in &rules.update {
        let old: T = patched(&rules.fixture, &case.old);
        let errors = update(&old, &patched(&rules.fixture, &case.good));
        assert!(
            errors.is_empty(),
            "{}: the allowed update was refused: {errors:#?}",
            case.rule
        );
        refused(
            &case.rule,
            &update(&old, &patched(&rules.fixture, &case.bad)),
            &case.path,
            &case.says,
        );
    }
}

#[test]
fn cluster_rules() {
    check::<Cluster>("cluster", validation::cluster);
    check_updates::<Cluster>("cluster", validation::cluster_update);
}

#[test]
fn pooler_rules() {
    check::<Pooler>("pooler", validation::pooler);
    check_updates::<Pooler>("pooler", validation::pooler_update);
}

#[test]
fn backup_rules() {
    check::<Backup>("backup", validation::backup);
}

#[test]
fn scheduled_backup_rules() {
    check::<ScheduledBackup>("scheduledbackup", validation::scheduled_backup);
    check_updates::<ScheduledBackup>("scheduledbackup", validation::scheduled_backup_update);
}

#[test]
fn catalog_rules() {
    check::<ClusterImageCatalog>("catalog", |c| validation::catalog(&c.spec.catalog));
}

#[test]
fn every_problem_is_reported_at_once() {
    let rules = rules("cluster");
    let cluster: Cluster = patched(
        &rules.fixture,
        &json!({"spec": {"instances": 0, "logLevel": "loud", "postgresql": {"parameters": {"port": "1"}}}}),
    );
    let errors = validation::cluster(&cluster);
    let mut paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["spec.instances", "spec.logLevel", "spec.postgresql.parameters[port]"]
    );
    let summary = validation::summary(&errors);
    assert!(
        summary.contains("spec.instances: ") && summary.matches("; ").count() == 2,
        "{summary}"
    );
}

fn operator_defaults() -> OperatorDefaults {
    OperatorDefaults {
        image_name: "postgresql:18.1".into(),
        monitoring_queries_config_map: "cnpg-default-monitoring".into(),
    }
}

#[test]
fn defaulting_fills_what_is_missing_and_nothing_else() {
    let fixture = rules("cluster").fixture;
    let mut minimal: Cluster = patched(
        &fixture,
        &json!({"spec": {"imageName": null, "instances": null, "stopDelay": 600}}),
    );
    defaults::cluster(&mut minimal, &operator_defaults());
    assert!(
        validation::cluster(&minimal).is_empty(),
        "{:#?}",
        validation::cluster(&minimal)
    );
    let spec = &minimal.spec;
    assert_eq!(spec.image_name.as_deref(), Some("postgresql:18.1"));
    assert_eq!(
        (spec.instances, spec.postgres_uid, spec.postgres_gid),
        (Some(1), Some(26), Some(26))
    );
    assert_eq!(spec.stop_delay, Some(600), "a user value survives defaulting");
    let initdb = spec.bootstrap.as_ref().and_then(|b| b.initdb.as_ref()).unwrap();
    assert_eq!(
        (initdb.database.as_deref(), initdb.owner.as_deref()),
        (Some("app"), Some("app"))
    );
    let maps = spec
        .monitoring
        .as_ref()
        .and_then(|m| m.custom_queries_config_map.clone())
        .unwrap();
    assert_eq!(
        (maps[0].name.as_str(), maps[0].key.as_str()),
        ("cnpg-default-monitoring", "queries")
    );
    assert_eq!(spec.storage.as_ref().unwrap().resize_in_use_volumes, Some(true));

    let once = minimal.clone();
    defaults::cluster(&mut minimal, &operator_defaults());
    assert_eq!(minimal, once, "defaulting twice changes nothing");
}

#[test]
fn defaulting_respects_choices() {
    let fixture = rules("cluster").fixture;
    let mut from_catalog: Cluster = patched(
        &fixture,
        &json!({"spec": {
            "imageName": null,
            "imageCatalogRef": {"apiGroup": "postgresql.cnpg.io", "kind": "ImageCatalog", "name": "pg", "major": 17},
            "monitoring": {"disableDefaultQueries": true},
            "bootstrap": {"pg_basebackup": {"source": "origin", "database": "shop"}},
            "externalClusters": [{"name": "origin"}]
        }}),
    );
    defaults::cluster(&mut from_catalog, &operator_defaults());
    assert!(validation::cluster(&from_catalog).is_empty());
    assert_eq!(
        from_catalog.spec.image_name, None,
        "a catalog reference gets no imageName"
    );
    assert_eq!(
        from_catalog.spec.monitoring.as_ref().unwrap().custom_queries_config_map,
        None
    );
    let bootstrap = from_catalog.spec.bootstrap.as_ref().unwrap();
    assert!(bootstrap.initdb.is_none(), "no initdb next to pg_basebackup");
    assert_eq!(bootstrap.pg_basebackup.as_ref().unwrap().owner.as_deref(), Some("shop"));

    let mut pooler: Pooler = patched(
        &rules("pooler").fixture,
        &json!({"spec": {"pgbouncer": {"poolMode": "transaction"}}}),
    );
    defaults::pooler(&mut pooler);
    assert_eq!(
        (pooler.spec.pooler_type.as_deref(), pooler.spec.instances),
        (Some("rw"), Some(1))
    );
    assert_eq!(pooler.spec.pgbouncer.pool_mode.as_deref(), Some("transaction"));
    let mut scheduled: ScheduledBackup = patched(&rules("scheduledbackup").fixture, &json!({}));
    defaults::scheduled_backup(&mut scheduled);
    assert_eq!(scheduled.spec.backup_owner_reference.as_deref(), Some("none"));
    assert!(validation::scheduled_backup(&scheduled).is_empty());
}
