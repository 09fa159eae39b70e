//! The REST protocol: routing, authentication, request recording, the write pipeline
//! (mutating admission → normalization or schema and CEL validation → validating admission →
//! store) and watch streams.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::RecordedRequest;
use super::admission::{self, Review, Services};
use super::error::ApiError;
use super::patch;
use super::resources::{self, Resource};
use super::schema;
use super::selectors::Selector;
use super::store::Store;

pub type Body = BoxBody<Bytes, Infallible>;

/// Everything a request handler shares.
pub struct State {
    pub store: Mutex<Store>,
    pub token: String,
    pub services: Services,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub bookmark_interval: Duration,
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    json_response(error.code, &error.status())
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A parsed resource path.
pub(super) struct Target {
    pub resource: Resource,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
}

fn query(uri: &hyper::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b),
                }
            }
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The resource, namespace, name and subresource a path addresses.
fn route(store: &Store, path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    let not_found = || ApiError::new(404, "NotFound", "the server could not find the requested resource");
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if store.resource(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            (*ns, {
                let mut v = vec![*plural];
                v.extend_from_slice(tail);
                v
            })
        }
        other => ("", other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, "", ""),
        [plural, name] => (*plural, *name, ""),
        [plural, name, sub] => (*plural, *name, *sub),
        _ => return Err(not_found()),
    };
    let resource = store.resource(group, version, plural).ok_or_else(not_found)?;
    if resource.namespaced && namespace.is_empty() && !name.is_empty() {
        return Err(not_found());
    }
    if !(subresource.is_empty() || (subresource == "status" && resource.status)) {
        return Err(not_found());
    }
    Ok(Target {
        resource,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        subresource: subresource.to_owned(),
    })
}

/// `metadata.name` rules of the real server: Namespaces and Services are DNS labels, the rest
/// DNS subdomains.
fn check_name(resource: &Resource, name: &str) -> Result<(), schema::Cause> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let label = matches!(resource.plural.as_str(), "namespaces" | "services") && resource.group.is_empty();
    let ok = if label {
        label_ok(name)
    } else {
        name.len() <= 253 && name.split('.').all(label_ok)
    };
    if ok || name.is_empty() {
        return Ok(());
    }
    let rule = if label {
        "a lowercase RFC 1123 label"
    } else {
        "a lowercase RFC 1123 subdomain"
    };
    Err(schema::Cause {
        reason: "FieldValueInvalid",
        field: "metadata.name".into(),
        message: format!(
            "metadata.name: Invalid value: {name:?}: must be {rule} (lower-case letters, digits, '-' and '.')"
        ),
    })
}

/// Normalizes and validates an object about to be stored.
fn validate(resource: &Resource, object: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if let Err(cause) = check_name(resource, &name) {
        return Err(ApiError::invalid(resource, &name, vec![cause]));
    }
    if let Some(normalize) = resource.normalize {
        *object = normalize(object).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                resource.kind, resource.version, resource.kind
            ))
        })?;
        return Ok(());
    }
    let Some(root) = &resource.schema else { return Ok(()) };
    schema::prune(root, object, true);
    let mut causes = Vec::new();
    let mut body = object.clone();
    if let Value::Object(map) = &mut body {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
    }
    schema::validate(root, &body, "", &mut causes);
    if causes.is_empty() {
        let old_body = old.map(|o| {
            let mut o = o.clone();
            if let Value::Object(map) = &mut o {
                map.remove("metadata");
            }
            o
        });
        schema::cel(root, &body, old_body.as_ref(), &mut causes);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(resource, &name, causes))
    }
}

/// The field manager of a write: `?fieldManager=`, else the client's User-Agent program name.
fn manager(params: &BTreeMap<String, String>, request: &Request<Incoming>) -> String {
    params.get("fieldManager").cloned().unwrap_or_else(|| {
        let agent = request
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        agent.split(['/', ' ']).next().unwrap_or("unknown").to_owned()
    })
}

fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .or_else(|_| {
            std::str::from_utf8(bytes)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_saphyr::from_str(t).map_err(|e| e.to_string()))
        })
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON or YAML: {e}")))
}

/// An object body: a JSON object whose `metadata`, if any, is an object too (so the handlers
/// can index into it).
fn shape(mut object: Value) -> Result<Value, ApiError> {
    let Value::Object(map) = &mut object else {
        return Err(ApiError::bad_request("the body must be an object"));
    };
    match map.get("metadata") {
        None | Some(Value::Null) => {
            map.insert("metadata".into(), json!({}));
        }
        Some(Value::Object(_)) => {}
        Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
    }
    Ok(object)
}

/// What admission webhooks are asked about a write.
fn review<'a>(
    target: &'a Target,
    operation: &'a str,
    name: &'a str,
    object: &'a Value,
    old: Option<&'a Value>,
) -> Review<'a> {
    Review {
        resource: &target.resource,
        operation,
        subresource: &target.subresource,
        namespace: &target.namespace,
        name,
        object: Some(object),
        old,
    }
}

impl State {
    fn webhooks(&self, plural: &str) -> Vec<Value> {
        let mut configurations = lock(&self.store).all_of("admissionregistration.k8s.io", plural);
        configurations.sort_by(|a, b| a["metadata"]["name"].as_str().cmp(&b["metadata"]["name"].as_str()));
        configurations
    }

    /// Mutating admission, validation, validating admission: the object to store.
    async fn admit(
        &self,
        target: &Target,
        operation: &str,
        object: Value,
        old: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let name = object["metadata"]["name"].as_str().unwrap_or(&target.name).to_owned();
        let review = review(target, operation, &name, &object, old);
        let mutating = self.webhooks("mutatingwebhookconfigurations");
        let mutated = admission::admit(mutating, true, &review, &self.services).await?;
        let mut object = mutated.unwrap_or(object);
        validate(&target.resource, &mut object, old)?;
        let review = self::review(target, operation, &name, &object, old);
        admission::admit(
            self.webhooks("validatingwebhookconfigurations"),
            false,
            &review,
            &self.services,
        )
        .await?;
        Ok(object)
    }

    fn after_write(&self, target: &Target, object: &Value) {
        if target.resource.group == "apiextensions.k8s.io"
            && let Ok(crd) = serde_json::from_value::<CustomResourceDefinition>(object.clone())
        {
            lock(&self.store).register(resources::from_crd(&crd));
        }
    }

    async fn create(&self, target: &Target, mut object: Value, manager: &str, apply: bool) -> Result<Value, ApiError> {
        let body_namespace = object["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
        if target.resource.namespaced && !body_namespace.is_empty() && body_namespace != target.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let kind_ok = object["kind"].as_str().is_none_or(|k| k == target.resource.kind)
            && object["apiVersion"]
                .as_str()
                .is_none_or(|v| v == target.resource.api_version());
        if !kind_ok {
            return Err(ApiError::bad_request(format!(
                "the object is not a {} of {}",
                target.resource.kind,
                target.resource.api_version()
            )));
        }
        object["apiVersion"] = json!(target.resource.api_version());
        object["kind"] = json!(target.resource.kind);
        if !target.resource.namespaced
            && let Value::Object(m) = &mut object["metadata"]
        {
            m.remove("namespace");
        }
        let object = self.admit(target, "CREATE", object, None).await?;
        let created = lock(&self.store).create(&target.resource, &target.namespace, object, manager, apply)?;
        self.after_write(target, &created);
        Ok(created)
    }

    /// A read-modify-write, retried when another write lands in between.
    async fn modify(
        &self,
        target: &Target,
        manager: &str,
        precondition: Option<String>,
        change: impl Fn(&Value, &mut Vec<patch::Managed>) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        for _ in 0..5 {
            let (current, mut managed) = {
                let store = lock(&self.store);
                let current = store.get(&target.resource, &target.namespace, &target.name)?;
                (
                    current,
                    store.managed(&target.resource, &target.namespace, &target.name),
                )
            };
            let tracked = managed.clone();
            let mut changed = shape(change(&current, &mut managed)?)?;
            if let Some(expected) = &precondition {
                changed["metadata"]["resourceVersion"] = json!(expected);
            }
            let admitted = self.admit(target, "UPDATE", changed, Some(&current)).await?;
            let rv = precondition
                .clone()
                .or_else(|| current["metadata"]["resourceVersion"].as_str().map(str::to_owned));
            let ownership = (managed != tracked).then_some(managed);
            let result = lock(&self.store).update(
                &target.resource,
                &target.namespace,
                &target.name,
                admitted,
                rv.as_deref(),
                &target.subresource,
                manager,
                ownership,
            );
            match result {
                Err(e) if e.code == 409 && precondition.is_none() => continue,
                other => {
                    if let Ok(object) = &other {
                        self.after_write(target, object);
                    }
                    return other;
                }
            }
        }
        Err(ApiError::conflict(&target.resource, &target.name))
    }

    async fn patch(
        &self,
        target: &Target,
        content_type: &str,
        body: Value,
        params: &BTreeMap<String, String>,
        manager: &str,
    ) -> Result<(Value, u16), ApiError> {
        let resource = &target.resource;
        if content_type.starts_with("application/apply-patch") {
            let body = shape(body)?;
            let Some(manager) = params.get("fieldManager").filter(|m| !m.is_empty()).cloned() else {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            };
            let force = params.get("force").is_some_and(|f| f == "true");
            let exists = lock(&self.store).get(resource, &target.namespace, &target.name).is_ok();
            if !exists {
                if !target.subresource.is_empty() {
                    return Err(ApiError::not_found(resource, &target.name));
                }
                let mut object = body;
                object["metadata"]["name"] = json!(target.name);
                return Ok((self.create(target, object, &manager, true).await?, 201));
            }
            let subresource = target.subresource.clone();
            let object = self
                .modify(target, &manager, None, |current, managed| {
                    patch::apply(current, &body, &manager, force, &subresource, managed).map_err(|conflicts| {
                        let list = conflicts.iter().map(|(m, f)| format!("conflict with \"{m}\": {f}")).collect::<Vec<_>>();
                        let mut e = ApiError::new(409, "Conflict", format!("Apply failed with {} conflict{}: {}", list.len(), if list.len() == 1 { "" } else { "s" }, list.join("\n")));
                        e.details = Some(json!({"causes": conflicts.iter().map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f})).collect::<Vec<_>>()}));
                        e
                    })
                })
                .await?;
            return Ok((object, 200));
        }
        let strategic = content_type.starts_with("application/strategic-merge-patch");
        if strategic && resource.normalize.is_none() {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let json = content_type.starts_with("application/json-patch");
        let precondition = if json {
            None
        } else {
            body["metadata"]["resourceVersion"].as_str().map(str::to_owned)
        };
        let object = self
            .modify(target, manager, precondition, |current, _| {
                let mut new = current.clone();
                if json {
                    patch::json_patch(&mut new, &body).map_err(|e| {
                        ApiError::new(422, "Invalid", format!("the JSON patch could not be applied: {e}"))
                    })?;
                } else if strategic {
                    patch::strategic(&mut new, &body);
                } else {
                    patch::merge(&mut new, &body);
                }
                Ok(new)
            })
            .await?;
        Ok((object, 200))
    }

    fn record(&self, verb: &str, target: &Target) {
        lock(&self.requests).push(RecordedRequest {
            verb: verb.to_owned(),
            group: target.resource.group.clone(),
            version: target.resource.version.clone(),
            resource: target.resource.plural.clone(),
            subresource: target.subresource.clone(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
        });
    }

    fn list(&self, target: &Target, params: &BTreeMap<String, String>) -> Result<Value, ApiError> {
        let labels =
            Selector::parse(params.get("labelSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)?;
        let fields =
            Selector::parse(params.get("fieldSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)?;
        let store = lock(&self.store);
        let namespace = (!target.namespace.is_empty()).then_some(target.namespace.as_str());
        let items: Vec<Value> = store
            .list(&target.resource, namespace)
            .into_iter()
            .filter(|o| labels.matches_labels(o) && fields.matches_fields(o))
            .collect();
        let start: usize = params.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
        let limit: usize = params
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
        let mut metadata = json!({"resourceVersion": store.resource_version().to_string()});
        if start.saturating_add(page.len()) < items.len() {
            metadata["continue"] = json!((start + page.len()).to_string());
            metadata["remainingItemCount"] = json!(items.len() - start - page.len());
        }
        Ok(
            json!({"apiVersion": target.resource.api_version(), "kind": format!("{}List", target.resource.kind), "metadata": metadata, "items": page}),
        )
    }
}

/// Handles one request.
pub async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| token == state.token);
    if !authorized {
        return Ok(error_response(&ApiError::new(401, "Unauthorized", "Unauthorized")));
    }
    Ok(match serve(&state, request).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    })
}

async fn serve(state: &Arc<State>, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET
        && let Some(document) = super::discovery::document(&lock(&state.store), &path)
    {
        return Ok(json_response(200, &document));
    }
    let params = query(request.uri());
    let target = route(&lock(&state.store), &path)?;
    let manager = manager(&params, &request);
    let method = request.method().clone();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let dry_run = params.get("dryRun").is_some_and(|d| d == "All");
    let bytes = request
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .to_bytes();
    let watching = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, target.name.is_empty()) {
        (&Method::GET, true) if watching => "watch",
        (&Method::GET, true) => "list",
        (&Method::GET, false) => "get",
        (&Method::POST, true) => "create",
        (&Method::PUT, false) => "update",
        (&Method::PATCH, false) => "patch",
        (&Method::DELETE, false) => "delete",
        (&Method::DELETE, true) => "deletecollection",
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported here"),
            ));
        }
    };
    state.record(verb, &target);
    if dry_run && verb != "get" && verb != "list" {
        return Err(ApiError::bad_request("dryRun is not supported by the stand-in"));
    }
    match verb {
        "watch" => state.watch(target, &params),
        "list" => Ok(json_response(200, &state.list(&target, &params)?)),
        "get" => Ok(json_response(
            200,
            &lock(&state.store).get(&target.resource, &target.namespace, &target.name)?,
        )),
        "create" => Ok(json_response(
            201,
            &state
                .create(&target, shape(parse_body(&bytes)?)?, &manager, false)
                .await?,
        )),
        "update" => {
            let body = shape(parse_body(&bytes)?)?;
            if body["metadata"]["name"].as_str().is_some_and(|n| n != target.name) {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            let precondition = body["metadata"]["resourceVersion"].as_str().map(str::to_owned);
            if precondition.is_none() {
                return Err(ApiError::invalid(
                    &target.resource,
                    &target.name,
                    vec![schema::Cause {
                        reason: "FieldValueInvalid",
                        field: "metadata.resourceVersion".into(),
                        message: "metadata.resourceVersion: Invalid value: 0: must be specified for an update".into(),
                    }],
                ));
            }
            Ok(json_response(
                200,
                &state
                    .modify(&target, &manager, precondition, |_, _| Ok(body.clone()))
                    .await?,
            ))
        }
        "patch" => {
            let (object, code) = state
                .patch(&target, &content_type, parse_body(&bytes)?, &params, &manager)
                .await?;
            Ok(json_response(code, &object))
        }
        "delete" => {
            let options = if bytes.is_empty() {
                json!({})
            } else {
                parse_body(&bytes)?
            };
            let orphan = params
                .get("propagationPolicy")
                .map(String::as_str)
                .or(options["propagationPolicy"].as_str())
                == Some("Orphan");
            if let Some(expected) = options["preconditions"]["resourceVersion"].as_str() {
                let current = lock(&state.store).get(&target.resource, &target.namespace, &target.name)?;
                if current["metadata"]["resourceVersion"].as_str() != Some(expected) {
                    return Err(ApiError::conflict(&target.resource, &target.name));
                }
            }
            let old = lock(&state.store).get(&target.resource, &target.namespace, &target.name)?;
            let review = Review {
                resource: &target.resource,
                operation: "DELETE",
                subresource: "",
                namespace: &target.namespace,
                name: &target.name,
                object: None,
                old: Some(&old),
            };
            admission::admit(
                state.webhooks("validatingwebhookconfigurations"),
                false,
                &review,
                &state.services,
            )
            .await?;
            Ok(json_response(
                200,
                &lock(&state.store).delete(&target.resource, &target.namespace, &target.name, orphan)?,
            ))
        }
        _ => {
            let list = state.list(&target, &params)?;
            let mut store = lock(&state.store);
            for item in list["items"].as_array().into_iter().flatten() {
                let name = item["metadata"]["name"].as_str().unwrap_or_default();
                let namespace = item["metadata"]["namespace"].as_str().unwrap_or_default();
                store.delete(&target.resource, namespace, name, false)?;
            }
            Ok(json_response(200, &list))
        }
    }
}
