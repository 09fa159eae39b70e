//! Admission through the webhook configurations stored in the stand-in, as the real server
//! does it: mutating webhooks in order (their JSON patches applied), then, after schema
//! validation, validating webhooks. A Service reference is reached at the address the test
//! registered for it, with TLS verified against the configuration's `caBundle` for the name
//! `<service>.<namespace>.svc`. `namespaceSelector` and `objectSelector` are not evaluated.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::Resource;

/// Where the Services that webhooks name listen: `(name, namespace)` → address.
pub type Services = Arc<Mutex<BTreeMap<(String, String), SocketAddr>>>;

/// One admission request.
pub struct Review<'a> {
    pub resource: &'a Resource,
    pub operation: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub object: Option<&'a Value>,
    pub old: Option<&'a Value>,
}

fn listed(list: &Value, wanted: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|v| v == "*" || v == wanted))
}

fn matches(webhook: &Value, review: &Review<'_>) -> bool {
    let resource = if review.subresource.is_empty() {
        review.resource.plural.clone()
    } else {
        format!("{}/{}", review.resource.plural, review.subresource)
    };
    webhook["rules"].as_array().into_iter().flatten().any(|rule| {
        let scope = rule["scope"].as_str().unwrap_or("*");
        let scope_ok = scope == "*" || (scope == "Namespaced") == review.resource.namespaced;
        listed(&rule["apiGroups"], &review.resource.group)
            && listed(&rule["apiVersions"], &review.resource.version)
            && listed(&rule["operations"], review.operation)
            && (listed(&rule["resources"], &resource) || listed(&rule["resources"], "*/*"))
            && scope_ok
    })
}

fn failed(name: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        500,
        "InternalError",
        format!("Internal error occurred: failed calling webhook \"{name}\": {error}"),
    )
}

async fn call(webhook: &Value, review: &Review<'_>, services: &Services) -> Result<Value, String> {
    let client_config = &webhook["clientConfig"];
    let mut builder =
        reqwest::Client::builder().timeout(Duration::from_secs(webhook["timeoutSeconds"].as_u64().unwrap_or(10)));
    if let Some(bundle) = client_config["caBundle"].as_str() {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .map_err(|e| format!("caBundle: {e}"))?;
        let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("caBundle: {e}"))?;
        builder = builder.tls_certs_only([certificate]);
    }
    let url = if let Some(url) = client_config["url"].as_str() {
        url.to_owned()
    } else {
        let service = &client_config["service"];
        let (name, namespace) = (
            service["name"].as_str().unwrap_or_default(),
            service["namespace"].as_str().unwrap_or_default(),
        );
        let address = services
            .lock()
            .map_err(|_| "services lock poisoned".to_owned())?
            .get(&(name.to_owned(), namespace.to_owned()))
            .copied()
            .ok_or_else(|| format!("service \"{name}\" not found"))?;
        let host = format!("{name}.{namespace}.svc");
        builder = builder.resolve(&host, address);
        let port = service["port"].as_u64().unwrap_or(443);
        format!("https://{host}:{port}{}", service["path"].as_str().unwrap_or("/"))
    };
    let mut uid_bytes = [0u8; 16];
    let _ = openssl::rand::rand_bytes(&mut uid_bytes);
    let uid: String = uid_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let r = review.resource;
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let resource = json!({"group": r.group, "version": r.version, "resource": r.plural});
    let mut request = json!({
        "uid": uid, "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
        "name": review.name, "operation": review.operation,
        "userInfo": {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]},
        "object": review.object, "oldObject": review.old, "dryRun": false,
    });
    if !review.namespace.is_empty() {
        request["namespace"] = json!(review.namespace);
    }
    if !review.subresource.is_empty() {
        request["subResource"] = json!(review.subresource);
    }
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
    let client = builder.build().map_err(|e| e.to_string())?;
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("Post \"{url}\": {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("received status {status}: {text}"));
    }
    let review_back: Value = serde_json::from_str(&text).map_err(|e| format!("bad AdmissionReview: {e}"))?;
    let answer = review_back["response"].clone();
    if answer["uid"] != uid.as_str() {
        return Err(format!("expected response.uid={uid:?}, got {}", answer["uid"]));
    }
    Ok(answer)
}

/// The denial of a webhook, as the real server words it.
fn denied(name: &str, answer: &Value) -> ApiError {
    let status = &answer["status"];
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = match status["message"].as_str() {
        Some(m) if !m.is_empty() => format!("admission webhook \"{name}\" denied the request: {m}"),
        _ => format!("admission webhook \"{name}\" denied the request without explanation"),
    };
    let reason = match status["reason"].as_str() {
        Some("Invalid") => "Invalid",
        Some("Forbidden") => "Forbidden",
        Some("BadRequest") => "BadRequest",
        _ if code == 422 => "Invalid",
        _ if code == 403 => "Forbidden",
        _ => "BadRequest",
    };
    let mut error = ApiError::new(code, reason, message);
    error.details = status.get("details").cloned();
    error
}

/// Runs the matching webhooks of `configurations`; mutating ones return the patched object.
pub async fn admit(
    configurations: Vec<Value>,
    mutating: bool,
    review: &Review<'_>,
    services: &Services,
) -> Result<Option<Value>, ApiError> {
    let mut object = review.object.cloned();
    for configuration in configurations {
        for webhook in configuration["webhooks"].as_array().into_iter().flatten() {
            let current = Review {
                object: object.as_ref(),
                ..*review
            };
            if !matches(webhook, &current) {
                continue;
            }
            let name = webhook["name"].as_str().unwrap_or_default();
            let fail = webhook["failurePolicy"].as_str() != Some("Ignore");
            let answer = match call(webhook, &current, services).await {
                Ok(answer) => answer,
                Err(e) if fail => return Err(failed(name, e)),
                Err(_) => continue,
            };
            if answer["allowed"] != true {
                return Err(denied(name, &answer));
            }
            if mutating && let (Some(patch), Some(target)) = (answer["patch"].as_str(), object.as_mut()) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(patch)
                    .map_err(|e| failed(name, e))?;
                let patch: Value = serde_json::from_slice(&bytes).map_err(|e| failed(name, e))?;
                super::patch::json_patch(target, &patch).map_err(|e| failed(name, e))?;
            }
        }
    }
    Ok(object)
}
