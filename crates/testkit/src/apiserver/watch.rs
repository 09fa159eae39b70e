//! Watch streams: newline-delimited events from a resource version (or the current state as
//! ADDED events first), filtered by namespace and selectors, with bookmarks, a timeout, and
//! 410 Gone when the version is older than the history.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::http::{Body, State, Target, lock};
use super::selectors::Selector;
use super::store::{Event, EventType};

impl State {
    pub(super) fn watch(
        self: &Arc<Self>,
        target: Target,
        params: &BTreeMap<String, String>,
    ) -> Result<Response<Body>, ApiError> {
        let labels =
            Selector::parse(params.get("labelSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)?;
        let fields =
            Selector::parse(params.get("fieldSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)?;
        let bookmarks = params.get("allowWatchBookmarks").is_some_and(|b| b == "true");
        let timeout = Duration::from_secs(
            params
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1800),
        );
        let requested = params
            .get("resourceVersion")
            .filter(|rv| !rv.is_empty() && *rv != "0")
            .map(|rv| rv.parse::<u64>());
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let resource = target.resource.clone();
        let namespace = target.namespace.clone();
        let selected = move |o: &Value| labels.matches_labels(o) && fields.matches_fields(o);
        let (initial, history, mut live, mut last) = {
            let store = lock(&self.store);
            match requested {
                Some(Ok(rv)) => match store.since(rv) {
                    Some((history, live)) => (Vec::new(), history, live, rv),
                    None => {
                        let gone = ApiError::new(
                            410,
                            "Expired",
                            format!("too old resource version: {rv} ({})", store.resource_version()),
                        );
                        let line = json!({"type": "ERROR", "object": gone.status()}).to_string() + "\n";
                        let _ = tx.try_send(Bytes::from(line));
                        drop(tx);
                        return Ok(stream_response(rx));
                    }
                },
                Some(Err(_)) => return Err(ApiError::bad_request("resourceVersion must be a number")),
                None => {
                    let current = store.resource_version();
                    let ns = (!namespace.is_empty()).then_some(namespace.as_str());
                    let objects = store.list(&resource, ns);
                    let (history, live) = store
                        .since(current)
                        .unwrap_or_else(|| (Vec::new(), store.events.subscribe()));
                    (objects, history, live, current)
                }
            }
        };
        let kind = resource.kind.clone();
        let api_version = resource.api_version();
        let state = Arc::clone(self);
        let interval = self.bookmark_interval;
        tokio::spawn(async move {
            let send =
                |kind: &str, object: &Value| Bytes::from(json!({"type": kind, "object": object}).to_string() + "\n");
            for object in initial.iter().filter(|o| selected(o)) {
                if tx.send(send("ADDED", object)).await.is_err() {
                    return;
                }
            }
            let relevant = |e: &Event| {
                e.group == resource.group
                    && e.plural == resource.plural
                    && (namespace.is_empty() || e.namespace == namespace)
            };
            let translate = |e: &Event| -> Option<(&'static str, Value)> {
                let now = selected(&e.object);
                let before = e.old.as_ref().map(&selected);
                match (e.kind, now, before) {
                    (EventType::Deleted, true, _) => Some(("DELETED", e.object.clone())),
                    (EventType::Added, true, _) => Some(("ADDED", e.object.clone())),
                    (EventType::Modified, true, Some(true)) => Some(("MODIFIED", e.object.clone())),
                    (EventType::Modified, true, _) => Some(("ADDED", e.object.clone())),
                    (EventType::Modified, false, Some(true)) => Some(("DELETED", e.object.clone())),
                    _ => None,
                }
            };
            for event in history.iter().filter(|e| relevant(e)) {
                last = last.max(event.rv);
                if let Some((kind, object)) = translate(event)
                    && tx.send(send(kind, &object)).await.is_err()
                {
                    return;
                }
            }
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            let streaming = async {
                loop {
                    tokio::select! {
                        received = live.recv() => match received {
                            Ok(event) if event.rv > last && relevant(&event) => {
                                last = event.rv;
                                if let Some((kind, object)) = translate(&event)
                                    && tx.send(send(kind, &object)).await.is_err()
                                {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                let gone = ApiError::new(410, "Expired", "the watch fell behind");
                                let _ = tx.send(send("ERROR", &gone.status())).await;
                                return;
                            }
                            Err(_) => return,
                        },
                        _ = ticks.tick(), if bookmarks => {
                            let rv = lock(&state.store).resource_version().max(last);
                            let bookmark = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}});
                            if tx.send(send("BOOKMARK", &bookmark)).await.is_err() {
                                return;
                            }
                        }
                        () = tx.closed() => return,
                    }
                }
            };
            // The watch ends at its timeout, as the real server ends it.
            let _ = tokio::time::timeout(timeout, streaming).await;
        });
        Ok(stream_response(rx))
    }
}

fn stream_response(mut rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|b| b.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("transfer-encoding", hyper::header::HeaderValue::from_static("chunked"));
    response
}
