//! The manifests under deploy/ keep the security contexts SECURITY.md promises.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use cnpg_conformance::read;
use serde_json::Value;

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Problems with a pod spec's security settings, per SECURITY.md's cluster layer.
fn pod_problems(pod: &Value, uid: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let ctx = &pod["securityContext"];
    if ctx["runAsNonRoot"] != true || ctx["runAsUser"] != uid {
        problems.push(format!("pod must run as non-root uid {uid}"));
    }
    if ctx["seccompProfile"]["type"] != "RuntimeDefault" {
        problems.push("pod seccomp must be RuntimeDefault".into());
    }
    for c in pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(pod["initContainers"].as_array().into_iter().flatten())
    {
        let name = c["name"].as_str().unwrap_or("?");
        let s = &c["securityContext"];
        for (field, want) in [
            ("allowPrivilegeEscalation", false),
            ("readOnlyRootFilesystem", true),
            ("privileged", false),
            ("runAsNonRoot", true),
        ] {
            if s[field] != want {
                problems.push(format!("container {name}: {field} must be {want}"));
            }
        }
        if s["capabilities"]["drop"] != serde_json::json!(["ALL"]) {
            problems.push(format!("container {name}: capabilities must drop ALL"));
        }
        for kind in ["requests", "limits"] {
            if !c["resources"][kind]["cpu"].is_string() || !c["resources"][kind]["memory"].is_string() {
                problems.push(format!("container {name}: cpu and memory {kind} are required"));
            }
        }
    }
    problems
}

#[test]
fn the_rebuilder_cronjob_is_forbid_concurrent_non_root_read_only_and_bounded() {
    let cronjob = yaml("deploy/rebuilder/cronjob.yaml");
    assert_eq!(cronjob["kind"], "CronJob");
    let spec = &cronjob["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert!(spec["startingDeadlineSeconds"].as_u64().is_some());
    assert!(spec["successfulJobsHistoryLimit"].as_u64().is_some() && spec["failedJobsHistoryLimit"].as_u64().is_some());
    let fields: Vec<&str> = spec["schedule"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(fields.len(), 5);
    assert!(fields[2..].iter().all(|f| *f == "*"), "daily");

    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod_problems(pod, 65532), Vec::<String>::new());
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "the rebuilder never talks to the API"
    );
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["name"] == "cache" && v["emptyDir"].is_object()),
        "the cache is an emptyDir"
    );
    assert!(
        volumes.iter().any(|v| v["secret"]["secretName"].is_string()),
        "credentials come from a Secret"
    );
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "rebuild");
    assert!(args.iter().any(|a| a.starts_with("--auth-file=")) && args.iter().any(|a| a.starts_with("--catalog-out=")));
}

#[test]
fn the_pod_checker_catches_what_it_must() {
    let pod = serde_json::json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
        "containers": [{"name": "x", "securityContext": {"readOnlyRootFilesystem": false}}],
    });
    let problems = pod_problems(&pod, 65532);
    assert!(problems.len() >= 6, "{problems:#?}");
}

#[test]
fn the_rebuilder_service_account_mounts_no_token() {
    let sa = yaml("deploy/rebuilder/serviceaccount.yaml");
    assert_eq!(sa["kind"], "ServiceAccount");
    assert_eq!(sa["automountServiceAccountToken"], false);
}
