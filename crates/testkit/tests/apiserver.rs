//! The API stand-in, driven by the kube client our operator uses: what a client sees must be
//! what a real API server would show it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::sync::Arc;
use std::time::Duration;

use cnpg_api::Cluster;
use cnpg_testkit::apiserver::{ApiServer, Options, RecordedRequest, TestTls};
use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::Status;
use serde_json::{Value, json};

fn server() -> ApiServer {
    ApiServer::start_with(Options {
        crds: cnpg_api::crds::all(),
        ..Options::default()
    })
    .unwrap()
}

fn config_map(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).unwrap()
}

fn cluster(name: &str, spec: Value) -> Cluster {
    serde_json::from_value(
        json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

/// The Status of a refused call.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_with_resource_versions_selectors_and_generate_name() {
    let server = server();
    let cms: Api<ConfigMap> = Api::namespaced(server.client().unwrap(), "default");
    let created = cms
        .create(
            &PostParams::default(),
            &config_map("a", json!({"app": "pg", "tier": "db"})),
        )
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    cms.create(&PostParams::default(), &config_map("b", json!({"app": "other"})))
        .await
        .unwrap();
    let status = refusal(cms.create(&PostParams::default(), &config_map("a", json!({}))).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "AlreadyExists"));

    let mut generated = config_map("", json!({}));
    generated.metadata.generate_name = Some("gen-".into());
    let generated = cms.create(&PostParams::default(), &generated).await.unwrap();
    let name = generated.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let selected = cms
        .list(&ListParams::default().labels("app=pg,tier in (db, cache)"))
        .await
        .unwrap();
    assert_eq!(
        selected
            .items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["a"]
    );
    let by_field = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(by_field.items.len(), 1);
    let page = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = cms
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);

    // An update carrying an old resourceVersion is a conflict; the current one wins.
    let mut fresh = cms.get("a").await.unwrap();
    fresh.data = Some([("k".to_owned(), "w".to_owned())].into());
    let updated = cms.replace("a", &PostParams::default(), &fresh).await.unwrap();
    assert_ne!(updated.metadata.resource_version.as_deref(), Some(rv.as_str()));
    let status = refusal(cms.replace("a", &PostParams::default(), &fresh).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(refusal(cms.get("a").await).code, 404);
    let missing: Api<ConfigMap> = Api::namespaced(server.client().unwrap(), "nowhere");
    let status = refusal(
        missing
            .create(&PostParams::default(), &config_map("x", json!({})))
            .await,
    );
    assert_eq!(status.code, 404);
    assert!(
        status.message.contains("namespaces \"nowhere\" not found"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn invalid_clusters_get_the_422_a_real_server_gives() {
    let server = server();
    let clusters: Api<Cluster> = Api::namespaced(server.client().unwrap(), "default");
    let valid = cluster(
        "pg",
        json!({"instances": 3, "imageName": "postgresql:18", "storage": {"size": "1Gi"}, "unknownField": true}),
    );
    let created = clusters.create(&PostParams::default(), &valid).await.unwrap();
    let stored = server
        .object("postgresql.cnpg.io", "v1", "clusters", "default", "pg")
        .unwrap();
    assert!(
        stored["spec"].get("unknownField").is_none(),
        "unknown fields are pruned"
    );
    assert_eq!(created.metadata.generation, Some(1));

    let status = refusal(
        clusters
            .create(&PostParams::default(), &cluster("bad", json!({"instances": 0})))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "Cluster.postgresql.cnpg.io \"bad\" is invalid: spec.instances: Invalid value: 0: spec.instances in body should be greater than or equal to 1"
    );
    let causes = status.details.as_ref().unwrap().causes.clone();
    assert_eq!(
        (causes[0].field.as_str(), causes[0].reason.as_str()),
        ("spec.instances", "FieldValueInvalid")
    );

    let both = cluster(
        "both",
        json!({"imageName": "postgresql:18", "imageCatalogRef": {"apiGroup": "postgresql.cnpg.io", "kind": "ImageCatalog", "name": "c", "major": 18}}),
    );
    let status = refusal(clusters.create(&PostParams::default(), &both).await);
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("imageName and imageCatalogRef are mutually exclusive"),
        "{}",
        status.message
    );
    let wrong_kind = cluster(
        "kind",
        json!({"imageCatalogRef": {"apiGroup": "postgresql.cnpg.io", "kind": "Catalog", "name": "c", "major": 18}}),
    );
    let status = refusal(clusters.create(&PostParams::default(), &wrong_kind).await);
    assert!(
        status.message.contains("spec.imageCatalogRef") && status.message.contains("only image catalogs"),
        "{}",
        status.message
    );

    // Transition rules see the stored object.
    let with_sa = cluster("sa", json!({"serviceAccountName": "one"}));
    clusters.create(&PostParams::default(), &with_sa).await.unwrap();
    let status = refusal(
        clusters
            .patch(
                "sa",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"serviceAccountName": "two"}})),
            )
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("spec.serviceAccountName") && status.message.contains("immutable"),
        "{}",
        status.message
    );
    let status = refusal(
        clusters
            .patch(
                "pg",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"instances": "three"}})),
            )
            .await,
    );
    assert!(status.message.contains("must be of type integer"), "{}", status.message);
}

#[tokio::test]
async fn status_is_a_subresource_and_generation_follows_the_spec() {
    let server = server();
    let clusters: Api<Cluster> = Api::namespaced(server.client().unwrap(), "default");
    let mut with_status = cluster("pg", json!({"instances": 1}));
    with_status.status = Some(serde_json::from_value(json!({"phase": "forged"})).unwrap());
    let created = clusters.create(&PostParams::default(), &with_status).await.unwrap();
    assert_eq!(created.status, None, "status is not written on create");

    let patched = clusters
        .patch_status(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Cluster in healthy state"}, "spec": {"instances": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.status.unwrap().phase.as_deref(),
        Some("Cluster in healthy state")
    );
    assert_eq!(
        patched.spec.instances,
        Some(1),
        "the status endpoint leaves the spec alone"
    );
    assert_eq!(patched.metadata.generation, Some(1));

    let patched = clusters
        .patch(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"instances": 3}, "status": {"phase": "forged"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.instances, Some(3));
    assert_eq!(
        patched.status.unwrap().phase.as_deref(),
        Some("Cluster in healthy state"),
        "the main endpoint leaves status alone"
    );
    assert_eq!(patched.metadata.generation, Some(2));
    let relabelled = clusters
        .patch(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        relabelled.metadata.generation,
        Some(2),
        "metadata does not bump the generation"
    );
}

#[tokio::test]
async fn server_side_apply_tracks_managers_and_reports_conflicts() {
    let server = server();
    let clusters: Api<Cluster> = Api::namespaced(server.client().unwrap(), "default");
    let applied = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg"},
        "spec": {"instances": 3, "imageName": "postgresql:18", "description": "first"}});
    let first = clusters
        .patch("pg", &PatchParams::apply("cnpg-operator"), &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(first.spec.instances, Some(3));
    let managers: Vec<String> = first
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| m.manager.clone().unwrap())
        .collect();
    assert_eq!(managers, ["cnpg-operator"]);
    let fields = first.metadata.managed_fields.as_ref().unwrap()[0]
        .fields_v1
        .clone()
        .unwrap()
        .0;
    assert_eq!(fields["f:spec"]["f:instances"], json!({}));

    // Re-applying the same thing changes nothing.
    let again = clusters
        .patch("pg", &PatchParams::apply("cnpg-operator"), &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, first.metadata.resource_version);

    // Another manager that wants a different value conflicts, unless it forces.
    let theirs = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg"}, "spec": {"instances": 5}});
    let status = refusal(
        clusters
            .patch("pg", &PatchParams::apply("kubectl"), &Patch::Apply(&theirs))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("conflict with \"cnpg-operator\"") && status.message.contains(".spec.instances"),
        "{}",
        status.message
    );
    let forced = clusters
        .patch("pg", &PatchParams::apply("kubectl").force(), &Patch::Apply(&theirs))
        .await
        .unwrap();
    assert_eq!(forced.spec.instances, Some(5));

    // A field the first manager stops applying, and nobody else owns, goes away.
    let fewer = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg"}, "spec": {"imageName": "postgresql:18"}});
    let trimmed = clusters
        .patch("pg", &PatchParams::apply("cnpg-operator"), &Patch::Apply(&fewer))
        .await
        .unwrap();
    assert_eq!(trimmed.spec.description, None);
    assert_eq!(trimmed.spec.instances, Some(5), "kubectl owns instances now");

    // Apply through the status subresource, and apply of a missing object creates it.
    let status_apply = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg"}, "status": {"phase": "Setting up primary"}});
    let with_status = clusters
        .patch_status(
            "pg",
            &PatchParams::apply("cnpg-operator").force(),
            &Patch::Apply(&status_apply),
        )
        .await
        .unwrap();
    assert_eq!(with_status.status.unwrap().phase.as_deref(), Some("Setting up primary"));
    let created = clusters.patch("new", &PatchParams::apply("cnpg-operator"), &Patch::Apply(&json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "new"}, "spec": {}}))).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let bad = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg"}, "spec": {"instances": 0}});
    assert_eq!(
        refusal(
            clusters
                .patch("pg", &PatchParams::apply("kubectl").force(), &Patch::Apply(&bad))
                .await
        )
        .code,
        422
    );
}

#[tokio::test]
async fn watches_stream_changes_resume_from_a_version_and_send_bookmarks() {
    let server = ApiServer::start_with(Options {
        history: 8,
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    })
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client().unwrap(), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.unwrap();
    let params = WatchParams::default().labels("app=pg").timeout(5);
    let mut events = cms.watch(&params, &from).await.unwrap().boxed();
    cms.create(&PostParams::default(), &config_map("w", json!({"app": "pg"})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &config_map("ignored", json!({"app": "other"})))
        .await
        .unwrap();
    cms.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "2"}})))
        .await
        .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut bookmarks = 0;
    while seen.len() < 3 || bookmarks == 0 {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("an event within 10 s")
            .unwrap()
        {
            Some(WatchEvent::Added(c)) => seen.push(format!("ADDED {}", c.metadata.name.unwrap())),
            Some(WatchEvent::Modified(c)) => seen.push(format!("MODIFIED {}", c.data.unwrap()["k"])),
            Some(WatchEvent::Deleted(c)) => seen.push(format!("DELETED {}", c.metadata.name.unwrap())),
            Some(WatchEvent::Bookmark(b)) => {
                assert!(!b.metadata.resource_version.is_empty());
                bookmarks += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        ["ADDED w", "MODIFIED 2", "DELETED w"],
        "leaving the selector reads as a deletion"
    );

    // Resuming from a version the history no longer holds is 410 Gone.
    for i in 0..10 {
        cms.create(&PostParams::default(), &config_map(&format!("churn-{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut stale = cms.watch(&params, &from).await.unwrap().boxed();
    match stale.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn the_kube_runtime_watcher_lists_then_follows() {
    let server = server();
    let client = server.client().unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "default");
    clusters
        .create(&PostParams::default(), &cluster("before", json!({})))
        .await
        .unwrap();
    let stream = kube::runtime::watcher(clusters.clone(), kube::runtime::watcher::Config::default());
    let mut objects = kube::runtime::WatchStreamExt::applied_objects(stream).boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), objects.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
    clusters
        .create(&PostParams::default(), &cluster("after", json!({})))
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), objects.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("after"));
}

#[tokio::test]
async fn finalizers_hold_deletion_and_owners_take_their_dependents() {
    let server = server();
    let client = server.client().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let mut held = config_map("held", json!({}));
    held.metadata.finalizers = Some(vec!["cnpg.io/cleanup".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = cms.get("held").await.unwrap();
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "still there, marked for deletion"
    );
    let remove = json!([{"op": "test", "path": "/metadata/finalizers", "value": ["cnpg.io/cleanup"]}, {"op": "remove", "path": "/metadata/finalizers"}]);
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::<()>::Json(serde_json::from_value(remove).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        refusal(cms.get("held").await).code,
        404,
        "gone once the last finalizer is removed"
    );

    let owner = cms
        .create(&PostParams::default(), &config_map("owner", json!({})))
        .await
        .unwrap();
    let dependent: Secret = serde_json::from_value(json!({"metadata": {"name": "dependent", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.unwrap(), "controller": true}]}})).unwrap();
    secrets.create(&PostParams::default(), &dependent).await.unwrap();
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        refusal(secrets.get("dependent").await).code,
        404,
        "collected with its owner"
    );

    let namespaces: Api<Namespace> = Api::all(client);
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap(),
        )
        .await
        .unwrap();
    let inside: Api<ConfigMap> = Api::namespaced(server.client().unwrap(), "doomed");
    inside
        .create(&PostParams::default(), &config_map("c", json!({})))
        .await
        .unwrap();
    namespaces.delete("doomed", &DeleteParams::default()).await.unwrap();
    assert!(server.object("", "v1", "configmaps", "doomed", "c").is_none());
}

#[tokio::test]
async fn every_request_is_recorded_and_unauthenticated_ones_refused() {
    let server = server();
    let client = server.client().unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "default");
    server.clear_requests();
    clusters
        .create(&PostParams::default(), &cluster("pg", json!({})))
        .await
        .unwrap();
    clusters.list(&ListParams::default()).await.unwrap();
    clusters
        .patch_status(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "x"}})),
        )
        .await
        .unwrap();
    let seen: Vec<(String, String, String, String)> = server
        .requests()
        .into_iter()
        .map(|r: RecordedRequest| (r.verb, r.resource, r.subresource, r.namespace))
        .collect();
    let expected = [
        ("create", "clusters", "", "default"),
        ("list", "clusters", "", "default"),
        ("patch", "clusters", "status", "default"),
    ];
    assert_eq!(
        seen,
        expected.map(|(a, b, c, d)| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned()))
    );
    assert!(server.requests().iter().all(|r| r.group == "postgresql.cnpg.io"));

    let mut config = server.kube_config().unwrap();
    config.auth_info.token = Some("wrong".to_owned().into());
    let intruder: Api<Cluster> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    assert_eq!(refusal(intruder.list(&ListParams::default()).await).code, 401);

    let discovery = kube::Discovery::new(client).run().await.unwrap();
    assert!(discovery.groups().any(|g| g.name() == "postgresql.cnpg.io"));
}

/// A webhook server for the admission test: refuses Clusters with more than 5 instances (422,
/// naming the field) and labels the ones it admits.
async fn webhook(tls: &TestTls) -> std::net::SocketAddr {
    let acceptor = Arc::new(tls.acceptor().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = Arc::clone(&acceptor);
            tokio::spawn(async move {
                let ssl = openssl::ssl::Ssl::new(acceptor.context()).unwrap();
                let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                std::pin::Pin::new(&mut stream).accept().await.unwrap();
                let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                    use http_body_util::BodyExt as _;
                    let path = request.uri().path().to_owned();
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let review: Value = serde_json::from_slice(&body).unwrap();
                    let uid = review["request"]["uid"].clone();
                    let instances = review["request"]["object"]["spec"]["instances"].as_i64().unwrap_or(1);
                    let response = if path.starts_with("/validate") && instances > 5 {
                        json!({"uid": uid, "allowed": false, "status": {"code": 422, "reason": "Invalid", "message": "spec.instances: at most 5",
                            "details": {"causes": [{"field": "spec.instances", "reason": "FieldValueInvalid", "message": "at most 5"}]}}})
                    } else if path.starts_with("/mutate") {
                        use base64::Engine as _;
                        let patch = json!([{"op": "add", "path": "/metadata/labels", "value": {"admitted": "yes"}}]);
                        json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())})
                    } else {
                        json!({"uid": uid, "allowed": true})
                    };
                    let body =
                        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
                            .to_string();
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from(body),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn admission_goes_through_the_stored_webhook_configurations() {
    use base64::Engine as _;
    let server = server();
    let client = server.client().unwrap();
    let tls = TestTls::new(&["cnpg-webhook-service.cnpg-system.svc"]).unwrap();
    server.register_service("cnpg-webhook-service", "cnpg-system", webhook(&tls).await);
    let bundle = base64::engine::general_purpose::STANDARD.encode(tls.ca_pem().unwrap());
    let hook = |name: &str, path: &str| {
        json!({"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
            "clientConfig": {"caBundle": bundle, "service": {"name": "cnpg-webhook-service", "namespace": "cnpg-system", "path": path, "port": 443}},
            "rules": [{"apiGroups": ["postgresql.cnpg.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["clusters"]}]})
    };
    let mutating: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "cnpg-mutating-webhook-configuration"}, "webhooks": [hook("mcluster.cnpg.io", "/mutate-postgresql-cnpg-io-v1-cluster")]})).unwrap();
    let validating: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "cnpg-validating-webhook-configuration"}, "webhooks": [hook("vcluster.cnpg.io", "/validate-postgresql-cnpg-io-v1-cluster")]})).unwrap();
    for (object, plural, kind) in [
        (
            mutating,
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
        ),
        (
            validating,
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
        ),
    ] {
        let resource = kube::api::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "default");
    let admitted = clusters
        .create(&PostParams::default(), &cluster("pg", json!({"instances": 3})))
        .await
        .unwrap();
    assert_eq!(
        admitted.metadata.labels.unwrap()["admitted"],
        "yes",
        "the mutating webhook's patch was applied"
    );
    let status = refusal(
        clusters
            .create(&PostParams::default(), &cluster("big", json!({"instances": 7})))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "admission webhook \"vcluster.cnpg.io\" denied the request: spec.instances: at most 5"
    );
    assert_eq!(status.details.unwrap().causes[0].field, "spec.instances");

    // A webhook that cannot be reached fails the request closed.
    server.register_service("cnpg-webhook-service", "cnpg-system", "127.0.0.1:1".parse().unwrap());
    let status = refusal(
        clusters
            .create(&PostParams::default(), &cluster("unreachable", json!({})))
            .await,
    );
    assert_eq!(status.code, 500);
    assert!(
        status.message.contains("failed calling webhook \"mcluster.cnpg.io\""),
        "{}",
        status.message
    );
}
