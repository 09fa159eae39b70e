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
    // The state (catalog, Release dates) outlives the pod: a claim we ship, mounted where
    // --state-dir and --catalog-out point.
    let claim = yaml("deploy/rebuilder/state.yaml");
    assert_eq!(claim["kind"], "PersistentVolumeClaim");
    let state = volumes
        .iter()
        .find(|v| v["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"])
        .expect("a volume on the state claim");
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == state["name"])
        .expect("the state volume is mounted");
    let dir = mount["mountPath"].as_str().unwrap();
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "rebuild");
    assert!(args.iter().any(|a| a.starts_with("--auth-file=")));
    assert!(args.contains(&format!("--state-dir={dir}").as_str()), "{args:?}");
    assert!(
        args.iter().any(|a| a
            .strip_prefix("--catalog-out=")
            .is_some_and(|p| p.starts_with(&format!("{dir}/")))),
        "the catalog is kept on the state volume: {args:?}"
    );
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

#[test]
fn the_operator_runs_locked_down_with_probes_and_pinned_images() {
    let deployment = yaml("deploy/operator/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod_problems(pod, 65532), Vec::<String>::new());
    assert_eq!(pod["serviceAccountName"], "cnpg-manager");
    let container = &pod["containers"][0];
    let ports: Vec<(&str, u64)> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["containerPort"].as_u64().unwrap()))
        .collect();
    assert_eq!(ports, [("webhook-server", 9443), ("metrics", 8080)]);
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["scheme"], "HTTPS",
            "{probe} goes through TLS"
        );
    }
    let mut images = vec![container["image"].as_str().unwrap()];
    images.extend(
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"].as_str().unwrap().ends_with("IMAGE_NAME"))
            .map(|e| e["value"].as_str().unwrap()),
    );
    assert_eq!(images.len(), 5, "{images:?}");
    for image in images {
        let digest = image.split_once("@sha256:").map(|(_, d)| d).unwrap_or_default();
        assert!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{image} is not pinned by digest"
        );
    }
}

#[test]
fn the_operator_role_grants_no_wildcards_exec_or_escalation() {
    let role = yaml("deploy/rbac/clusterrole.yaml");
    let rules = role["rules"].as_array().unwrap();
    let mut granted = Vec::new();
    for rule in rules {
        for field in ["apiGroups", "resources", "verbs"] {
            let values = rule[field].as_array().unwrap();
            assert!(!values.iter().any(|v| v == "*"), "wildcard in {field}: {rule}");
        }
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    granted.push(format!(
                        "{}/{}:{}",
                        group.as_str().unwrap(),
                        resource.as_str().unwrap(),
                        verb.as_str().unwrap()
                    ));
                }
            }
        }
    }
    for forbidden in ["/pods/exec:create", "/pods/exec:get", "/nodes:patch", "/nodes:update"] {
        assert!(!granted.iter().any(|g| g == forbidden), "{forbidden} is granted");
    }
    assert!(!granted.iter().any(|g| {
        ["escalate", "bind", "impersonate", "approve"]
            .iter()
            .any(|v| g.ends_with(&format!(":{v}")))
    }));
    assert!(
        !granted
            .iter()
            .any(|g| g.contains("clusterroles") || g.contains("clusterrolebindings"))
    );
    assert!(!granted.iter().any(|g| g.contains("customresourcedefinitions")));
    let catalogs: Vec<&String> = granted.iter().filter(|g| g.contains("imagecatalogs")).collect();
    assert!(
        catalogs
            .iter()
            .all(|g| g.ends_with(":get") || g.ends_with(":list") || g.ends_with(":watch")),
        "{catalogs:?}"
    );
    let webhooks = rules
        .iter()
        .find(|r| r["resources"].to_string().contains("webhookconfigurations"))
        .unwrap();
    assert_eq!(webhooks["verbs"], serde_json::json!(["get", "patch"]));
    assert_eq!(
        webhooks["resourceNames"].as_array().unwrap().len(),
        2,
        "only our own configurations"
    );

    let binding = yaml("deploy/rbac/clusterrolebinding.yaml");
    assert_eq!(binding["roleRef"]["name"], "cnpg-manager");
    assert_eq!(binding["subjects"][0]["name"], "cnpg-manager");
    assert_eq!(binding["subjects"][0]["namespace"], "cnpg-system");
}

#[test]
fn webhooks_fail_closed_and_reach_only_our_service() {
    for (file, prefix, expected) in [
        (
            "deploy/webhooks/mutating.yaml",
            "mutate",
            vec!["mbackup", "mcluster", "mscheduledbackup"],
        ),
        (
            "deploy/webhooks/validating.yaml",
            "validate",
            vec!["vbackup", "vcluster", "vpooler", "vscheduledbackup"],
        ),
    ] {
        let config = yaml(file);
        let hooks = config["webhooks"].as_array().unwrap();
        let names: Vec<&str> = hooks
            .iter()
            .map(|h| h["name"].as_str().unwrap().trim_end_matches(".cnpg.io"))
            .collect();
        assert_eq!(names, expected);
        for hook in hooks {
            assert_eq!(hook["failurePolicy"], "Fail");
            assert_eq!(hook["sideEffects"], "None");
            assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
            assert!(
                hook["clientConfig"]["caBundle"].is_null(),
                "the operator injects the CA at runtime"
            );
            let service = &hook["clientConfig"]["service"];
            assert_eq!(
                (service["name"].as_str(), service["namespace"].as_str()),
                (Some("cnpg-webhook-service"), Some("cnpg-system"))
            );
            let kind = hook["name"]
                .as_str()
                .unwrap()
                .trim_end_matches(".cnpg.io")
                .get(1..)
                .unwrap();
            assert_eq!(service["path"], format!("/{prefix}-postgresql-cnpg-io-v1-{kind}"));
        }
    }
    let namespace = yaml("deploy/namespace.yaml");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

/// A manifest checker installed by scripts/setup.sh, or a failure saying so.
fn python_tool(name: &str) -> std::path::PathBuf {
    let cache = std::env::var_os("CNPG_RS_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/cnpg-rs"));
    let tool = cache.join("python/bin").join(name);
    assert!(
        tool.exists(),
        "{name} is missing at {}: scripts/setup.sh installs it",
        tool.display()
    );
    tool
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../..")
}

#[test]
fn checkov_finds_nothing_in_deploy() {
    let output = std::process::Command::new(python_tool("checkov"))
        .current_dir(repo())
        .args([
            "-d",
            "deploy",
            "--framework",
            "kubernetes",
            "--skip-download",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let summary = &report["summary"];
    assert_eq!(
        summary["failed"], 0,
        "checkov failures: {:#}",
        report["results"]["failed_checks"]
    );
    assert!(summary["passed"].as_u64().unwrap() > 200, "{summary}");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Every skip carries its reason (ours: the operator's token, its webhook and RoleBinding
    // rights, each in source and bundle).
    let skipped = report["results"]["skipped_checks"].as_array().unwrap();
    let mut ids: Vec<&str> = skipped.iter().map(|s| s["check_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids,
        ["CKV_K8S_155", "CKV_K8S_157", "CKV_K8S_38"],
        "a skip was added or dropped: justify it here"
    );
    for check in skipped {
        let reason = check["check_result"]["suppress_comment"].as_str().unwrap_or_default();
        assert!(
            reason.len() > 30,
            "{} in {} is skipped without a reason",
            check["check_id"],
            check["file_path"]
        );
    }
}

#[test]
fn kubernetes_validate_accepts_every_built_in_object_on_the_oldest_and_newest_supported_version() {
    let mut files: Vec<String> = [
        "namespace.yaml",
        "install.yaml",
        "examples/networkpolicies.yaml",
        "rebuilder/cronjob.yaml",
        "rebuilder/serviceaccount.yaml",
        "rebuilder/state.yaml",
    ]
    .map(|f| format!("deploy/{f}"))
    .to_vec();
    files.sort();
    for version in ["1.33.0", "1.37.0"] {
        let output = std::process::Command::new(python_tool("kubernetes-validate"))
            .current_dir(repo())
            .args(["--strict", "--quiet", "-k", version])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubernetes {version}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The checker does fail on a bad object.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: \"https\"}], colour: blue}\n",
    )
    .unwrap();
    let output = std::process::Command::new(python_tool("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(bad.path())
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a Service with a string port and an unknown field passed"
    );
}

/// For each port of the example cluster's instances, the peers some policy lets in, as
/// `namespace-selector/pod-selector` strings.
fn instance_ingress(policies: &[serde_json::Value]) -> std::collections::BTreeMap<u64, Vec<String>> {
    let mut allowed: std::collections::BTreeMap<u64, Vec<String>> = std::collections::BTreeMap::new();
    for policy in policies {
        let selects = &policy["spec"]["podSelector"]["matchLabels"];
        let instances = selects["cnpg.io/cluster"] == "cluster-example"
            && (selects["cnpg.io/podRole"].is_null() || selects["cnpg.io/podRole"] == "instance");
        if !instances {
            continue;
        }
        for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
            for port in rule["ports"].as_array().unwrap() {
                for peer in rule["from"].as_array().unwrap() {
                    allowed.entry(port["port"].as_u64().unwrap()).or_default().push(format!(
                        "{}/{}",
                        peer["namespaceSelector"]["matchLabels"], peer["podSelector"]["matchLabels"]
                    ));
                }
            }
        }
    }
    allowed
}

#[test]
fn example_network_policies_let_in_only_who_needs_each_port() {
    let text = read("deploy/examples/networkpolicies.yaml").unwrap();
    let policies: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    // A default deny selects every pod of the cluster with no ingress rule.
    assert!(policies.iter().any(
        |p| p["spec"]["podSelector"]["matchLabels"]["cnpg.io/cluster"] == "cluster-example"
            && p["spec"]["ingress"].is_null()
            && p["spec"]["policyTypes"] == serde_json::json!(["Ingress"])
    ));
    let allowed = instance_ingress(&policies);
    assert_eq!(
        allowed.keys().copied().collect::<Vec<_>>(),
        [5432, 8000, 9187],
        "no other port is open"
    );
    assert_eq!(
        allowed[&8000],
        [r#"{"kubernetes.io/metadata.name":"cnpg-system"}/{"app.kubernetes.io/name":"cloudnative-pg"}"#],
        "only the operator reaches the status API"
    );
    assert_eq!(allowed[&9187], [r#"{"kubernetes.io/metadata.name":"monitoring"}/null"#]);
    assert!(
        allowed[&5432].iter().all(|peer| peer.contains("cluster-example")),
        "{:?}",
        allowed[&5432]
    );
    let operator = yaml("deploy/operator/networkpolicy.yaml");
    let metrics = operator["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ports"][0]["port"] == 8080)
        .unwrap();
    assert_eq!(
        metrics["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
}
