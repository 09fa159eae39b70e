//! deploy/ is what `operator manifests` generates, and every document in it is a valid object
//! of its kind: built-in kinds round-trip through the k8s-openapi types without losing a
//! field, CRDs are exactly the ones the API types produce, and the examples are Clusters,
//! Poolers and ScheduledBackups the operator accepts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::path::{Path, PathBuf};

use cnpg_api::defaults::{self, OperatorDefaults};
use cnpg_api::{Cluster, Pooler, ScheduledBackup, validation};
use cnpg_operator::manifests;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../../deploy")
}

/// Every YAML document under `dir`, with the file it came from.
fn documents(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(dir).unwrap().display().to_string();
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        docs.extend(parsed.into_iter().filter(|d| !d.is_null()).map(|d| (name.clone(), d)));
    }
    docs
}

/// `doc` read as `T` and written back is `doc` again: no unknown or misspelt field was dropped
/// and every value has the right type.
fn round_trips<T: DeserializeOwned + Serialize>(name: &str, doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &again, doc,
        "{name}: a field is unknown to its kind or has the wrong type"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn deploy_is_what_the_generator_writes() {
    let generated = manifests::generate(&deploy()).unwrap();
    if let Err(e) = manifests::check(&deploy(), &generated) {
        panic!("{e}");
    }
}

#[test]
fn the_generator_notices_drift_and_writes_nothing_in_check_mode() {
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&deploy(), copy.path());
    let generated = manifests::generate(copy.path()).unwrap();
    let install = copy.path().join("install.yaml");
    std::fs::write(&install, "edited by hand\n").unwrap();
    std::fs::write(copy.path().join("crds/postgresql.cnpg.io_old.yaml"), "stale\n").unwrap();
    let err = manifests::check(copy.path(), &generated).unwrap_err().to_string();
    assert!(
        err.contains("install.yaml") && err.contains("postgresql.cnpg.io_old.yaml (stale)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&install).unwrap(),
        "edited by hand\n",
        "check mode wrote"
    );
    manifests::write(copy.path(), &generated).unwrap();
    manifests::check(copy.path(), &generated).unwrap();
    assert!(!copy.path().join("crds/postgresql.cnpg.io_old.yaml").exists());
}

#[test]
fn pins_move_digests_in_the_manifests_and_refuse_tags() {
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&deploy(), copy.path());
    let digest = "a".repeat(64);
    let changed = manifests::pin(copy.path(), &[format!("cnpg-rs/operator@sha256:{digest}")]).unwrap();
    assert_eq!(changed, 1, "the operator is pinned in its Deployment only");
    let deployment = std::fs::read_to_string(copy.path().join("operator/deployment.yaml")).unwrap();
    assert_eq!(
        deployment.matches(&format!("cnpg-rs/operator@sha256:{digest}")).count(),
        2,
        "image and OPERATOR_IMAGE_NAME"
    );
    let generated = manifests::generate(copy.path()).unwrap();
    let install = &generated
        .iter()
        .find(|g| g.path == Path::new("install.yaml"))
        .unwrap()
        .contents;
    assert!(install.contains(&digest));

    let err = manifests::pin(copy.path(), &["cnpg-rs/operator:1.0".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an image pinned by digest"), "{err}");
    let err = manifests::pin(copy.path(), &[format!("cnpg-rs/nothing@sha256:{digest}")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no manifest refers to"), "{err}");
}

#[test]
fn every_built_in_object_is_valid_for_its_kind() {
    let mut seen = 0;
    for (name, doc) in documents(&deploy()) {
        if name == "rebuilder/site.example.yaml" {
            continue; // the rebuilder's mirror configuration, not an object
        }
        let kind = (
            doc["apiVersion"].as_str().unwrap_or_default(),
            doc["kind"].as_str().unwrap_or_default(),
        );
        match kind {
            ("v1", "Namespace") => round_trips::<Namespace>(&name, &doc),
            ("v1", "ServiceAccount") => round_trips::<ServiceAccount>(&name, &doc),
            ("v1", "Service") => round_trips::<Service>(&name, &doc),
            ("v1", "ConfigMap") => round_trips::<ConfigMap>(&name, &doc),
            ("v1", "PersistentVolumeClaim") => round_trips::<PersistentVolumeClaim>(&name, &doc),
            ("apps/v1", "Deployment") => round_trips::<Deployment>(&name, &doc),
            ("batch/v1", "CronJob") => round_trips::<CronJob>(&name, &doc),
            ("networking.k8s.io/v1", "NetworkPolicy") => round_trips::<NetworkPolicy>(&name, &doc),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trips::<ClusterRole>(&name, &doc),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => round_trips::<ClusterRoleBinding>(&name, &doc),
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
                round_trips::<MutatingWebhookConfiguration>(&name, &doc);
            }
            ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
                round_trips::<ValidatingWebhookConfiguration>(&name, &doc);
            }
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                round_trips::<CustomResourceDefinition>(&name, &doc);
            }
            // Ours are checked against their CRDs below and by the API stand-in.
            ("postgresql.cnpg.io/v1", _) => continue,
            // kustomization.yaml files are kustomize's input, not objects.
            ("kustomize.config.k8s.io/v1beta1", "Kustomization") => continue,
            other => panic!("{name}: no check for {other:?}: add one"),
        }
        seen += 1;
    }
    assert!(seen >= 30, "only {seen} objects checked");
}

#[test]
fn the_crds_are_the_api_types() {
    let mut crds: Vec<CustomResourceDefinition> = documents(&deploy().join("crds"))
        .into_iter()
        .map(|(_, doc)| serde_json::from_value(doc).unwrap())
        .collect();
    let mut expected = cnpg_api::crds::all();
    expected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    assert_eq!(crds, expected);
    let cluster = crds.iter().find(|c| c.spec.names.kind == "Cluster").unwrap();
    let version = &cluster.spec.versions[0];
    let scale = version.subresources.as_ref().and_then(|s| s.scale.as_ref()).unwrap();
    assert_eq!(
        (
            scale.spec_replicas_path.as_str(),
            scale.status_replicas_path.as_str(),
            scale.label_selector_path.as_deref()
        ),
        (".spec.instances", ".status.instances", Some(".status.selector"))
    );
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Age", "Instances", "Ready", "Status", "Primary"]);
}

fn operator_defaults() -> OperatorDefaults {
    OperatorDefaults {
        image_name: "postgresql:18".into(),
        monitoring_queries_config_map: "cnpg-default-monitoring".into(),
    }
}

#[test]
fn the_examples_are_objects_the_operator_accepts() {
    let mut files = Vec::new();
    for (name, doc) in documents(&deploy().join("examples")) {
        match doc["kind"].as_str().unwrap() {
            "Cluster" => {
                round_trips::<Cluster>(&name, &doc);
                let mut cluster: Cluster = serde_json::from_value(doc).unwrap();
                defaults::cluster(&mut cluster, &operator_defaults());
                assert_eq!(validation::cluster(&cluster), Vec::new(), "{name}");
            }
            "Pooler" => {
                round_trips::<Pooler>(&name, &doc);
                let mut pooler: Pooler = serde_json::from_value(doc).unwrap();
                defaults::pooler(&mut pooler);
                assert_eq!(validation::pooler(&pooler), Vec::new(), "{name}");
            }
            "ScheduledBackup" => {
                round_trips::<ScheduledBackup>(&name, &doc);
                let scheduled: ScheduledBackup = serde_json::from_value(doc).unwrap();
                assert_eq!(validation::scheduled_backup(&scheduled), Vec::new(), "{name}");
            }
            "NetworkPolicy" => {}
            other => panic!("{name}: unexpected example kind {other}"),
        }
        files.push(name);
    }
    for example in [
        "cluster.yaml",
        "cluster-apparmor.yaml",
        "pooler.yaml",
        "scheduled-backup.yaml",
        "networkpolicies.yaml",
    ] {
        assert!(files.iter().any(|f| f == example), "{example} is missing");
    }
}

/// Creates `doc` through the stand-in with server-side apply, resolving its kind by discovery.
async fn apply(client: &kube::Client, doc: &Value) -> kube::Result<kube::api::DynamicObject> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let gvk = kube::core::GroupVersionKind::try_from(&kube::core::TypeMeta {
        api_version: doc["apiVersion"].as_str().unwrap().to_owned(),
        kind: doc["kind"].as_str().unwrap().to_owned(),
    })
    .unwrap();
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk).await?;
    let name = doc["metadata"]["name"].as_str().unwrap();
    let api: Api<DynamicObject> = match (capabilities.scope, doc["metadata"]["namespace"].as_str()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (kube::discovery::Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
        (kube::discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    api.patch(name, &PatchParams::apply("kubectl").force(), &Patch::Apply(doc))
        .await
}

#[tokio::test]
async fn install_yaml_and_the_examples_apply_to_an_api_server() {
    let server = cnpg_testkit::apiserver::ApiServer::start().unwrap();
    let client = server.client().unwrap();
    // The checked-in bundle, in order (the CRDs register our kinds on the way), keeping the
    // webhook configurations for last: with no operator behind them they refuse every Cluster.
    let install: Vec<Value> = documents(&deploy())
        .into_iter()
        .filter(|(name, _)| name == "install.yaml")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(install.len(), 16, "every install document");
    let (webhooks, rest): (Vec<&Value>, Vec<&Value>) = install
        .iter()
        .partition(|d| d["kind"].as_str().unwrap().ends_with("WebhookConfiguration"));
    for doc in rest {
        apply(&client, doc)
            .await
            .unwrap_or_else(|e| panic!("install.yaml: {} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    }
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "databases"}});
    apply(&client, &namespace).await.unwrap();
    for (name, doc) in documents(&deploy().join("examples")) {
        apply(&client, &doc)
            .await
            .unwrap_or_else(|e| panic!("{name}: {} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    }
    let stored = server
        .object("postgresql.cnpg.io", "v1", "clusters", "databases", "cluster-example")
        .unwrap();
    assert_eq!(stored["spec"]["instances"], 3);

    // The CRDs in deploy/ refuse what the API refuses.
    let mut bad = documents(&deploy().join("examples"))
        .into_iter()
        .find(|(n, _)| n == "cluster.yaml")
        .unwrap()
        .1;
    bad["spec"]["imageName"] = serde_json::json!("postgresql:18");
    let err = apply(&client, &bad).await.unwrap_err().to_string();
    assert!(
        err.contains("imageName and imageCatalogRef are mutually exclusive"),
        "{err}"
    );

    // The webhooks fail closed: until the operator serves them, no Cluster gets in.
    for doc in webhooks {
        apply(&client, doc).await.unwrap();
    }
    let mut another = documents(&deploy().join("examples"))
        .into_iter()
        .find(|(n, _)| n == "cluster.yaml")
        .unwrap()
        .1;
    another["metadata"]["name"] = serde_json::json!("another");
    let err = apply(&client, &another).await.unwrap_err().to_string();
    assert!(err.contains("failed calling webhook \"mcluster.cnpg.io\""), "{err}");
}
