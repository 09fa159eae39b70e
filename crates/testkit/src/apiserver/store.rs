//! Objects, resource versions and the event history watches read: the state of the stand-in.
//! Every write takes an already admitted and validated object; the HTTP layer does the rest.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::patch::{self, Managed};
use super::resources::Resource;

/// `(group, plural, namespace, name)`.
pub type Key = (String, String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// A change, as watches see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub object: Value,
    /// The object before a modification, to tell selector transitions.
    pub old: Option<Value>,
}

pub struct Entry {
    pub object: Value,
    pub managed: Vec<Managed>,
}

pub struct Store {
    pub resources: Vec<Resource>,
    objects: BTreeMap<Key, Entry>,
    rv: u64,
    history: VecDeque<Event>,
    /// Events kept for watches that resume from an older resource version.
    retained: usize,
    pub events: broadcast::Sender<Event>,
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// 5 characters from the OS CSPRNG (generateName suffixes, from the real server's alphabet).
fn suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    let _ = openssl::rand::rand_bytes(&mut bytes);
    bytes
        .iter()
        .filter_map(|b| ALPHABET.get(usize::from(*b) % ALPHABET.len()).map(|c| char::from(*c)))
        .collect()
}

/// A random (version 4) UUID.
fn uid() -> String {
    let mut b = [0u8; 16];
    let _ = openssl::rand::rand_bytes(&mut b);
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        let byte = match i {
            6 => (byte & 0x0f) | 0x40,
            8 => (byte & 0x3f) | 0x80,
            _ => *byte,
        };
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Everything but metadata and status: what bumps `metadata.generation`.
fn spec_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Value::Object(map) = &mut copy {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

impl Store {
    pub fn new(resources: Vec<Resource>, retained: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        let mut store = Self {
            resources,
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            retained,
            events,
        };
        for namespace in ["default", "kube-system"] {
            let Some(resource) = store.resource("", "v1", "namespaces") else {
                continue;
            };
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            let _ = store.create(&resource, "", object, "kube-apiserver", false);
        }
        store
    }

    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// An object as clients see it: with `managedFields`.
    fn render(entry: &Entry) -> Value {
        let mut object = entry.object.clone();
        if !entry.managed.is_empty() {
            object["metadata"]["managedFields"] = Value::Array(entry.managed.iter().map(Managed::render).collect());
        }
        object
    }

    fn key(resource: &Resource, namespace: &str, name: &str) -> Key {
        (
            resource.group.clone(),
            resource.plural.clone(),
            namespace.to_owned(),
            name.to_owned(),
        )
    }

    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(resource, namespace, name))
            .map(Self::render)
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    /// The managed fields of an object, for server-side apply.
    pub fn managed(&self, resource: &Resource, namespace: &str, name: &str) -> Vec<Managed> {
        self.objects
            .get(&Self::key(resource, namespace, name))
            .map(|e| e.managed.clone())
            .unwrap_or_default()
    }

    /// Objects of a resource in one namespace (or all, with `None`), sorted by namespace and name.
    pub fn list(&self, resource: &Resource, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, ns, _), _)| {
                *g == resource.group && *p == resource.plural && namespace.is_none_or(|n| n == ns)
            })
            .map(|(_, e)| Self::render(e))
            .collect()
    }

    /// Stored objects of any served kind named `kind` in `group` (webhook configurations).
    pub fn all_of(&self, group: &str, plural: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, _, _), _)| g == group && p == plural)
            .map(|(_, e)| e.object.clone())
            .collect()
    }

    fn emit(&mut self, kind: EventType, resource: &Resource, namespace: &str, object: Value, old: Option<Value>) {
        let event = Event {
            rv: self.rv,
            kind,
            group: resource.group.clone(),
            plural: resource.plural.clone(),
            namespace: namespace.to_owned(),
            object,
            old,
        };
        self.history.push_back(event.clone());
        while self.history.len() > self.retained {
            self.history.pop_front();
        }
        let _ = self.events.send(event);
    }

    /// Events after `rv`, and a receiver for the ones to come; `None` when `rv` is older than
    /// the history (the watch must fail with 410 Gone).
    pub fn since(&self, rv: u64) -> Option<(Vec<Event>, broadcast::Receiver<Event>)> {
        let oldest = self.history.front().map_or(self.rv, |e| e.rv);
        if rv + 1 < oldest && rv < self.rv {
            return None;
        }
        Some((
            self.history.iter().filter(|e| e.rv > rv).cloned().collect(),
            self.events.subscribe(),
        ))
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects
            .contains_key(&(String::new(), "namespaces".into(), String::new(), namespace.to_owned()))
    }

    /// Stores a new object. `apply` records its fields as applied rather than updated.
    pub fn create(
        &mut self,
        resource: &Resource,
        namespace: &str,
        mut object: Value,
        manager: &str,
        apply: bool,
    ) -> Result<Value, ApiError> {
        if resource.namespaced && !self.namespace_exists(namespace) {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("namespaces \"{namespace}\" not found"),
            ));
        }
        let mut name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        if name.is_empty() {
            let Some(prefix) = object["metadata"]["generateName"].as_str().filter(|p| !p.is_empty()) else {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    vec![super::schema::Cause {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "metadata.name: Required value: name or generateName is required".into(),
                    }],
                ));
            };
            name = format!("{prefix}{}", suffix());
        }
        let key = Self::key(resource, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", resource.qualified()),
            ));
        }
        self.rv += 1;
        if resource.status
            && resource.normalize.is_none()
            && let Value::Object(map) = &mut object
        {
            map.remove("status");
        }
        let metadata = &mut object["metadata"];
        metadata["name"] = json!(name);
        if resource.namespaced {
            metadata["namespace"] = json!(namespace);
        } else if let Value::Object(m) = metadata {
            m.remove("namespace");
        }
        metadata["uid"] = json!(uid());
        metadata["resourceVersion"] = json!(self.rv.to_string());
        metadata["creationTimestamp"] = json!(now());
        metadata["generation"] = json!(1);
        if let Value::Object(m) = metadata {
            m.remove("managedFields");
            m.remove("deletionTimestamp");
        }
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        let mut managed = Vec::new();
        let time = now();
        if apply {
            let _ = patch::apply(&json!({}), &object, manager, true, "", &mut managed);
        } else {
            patch::record_update(&json!({}), &object, manager, "", &mut managed);
        }
        managed.iter_mut().for_each(|m| m.time.clone_from(&time));
        let entry = Entry {
            object: object.clone(),
            managed,
        };
        let rendered = Self::render(&entry);
        self.objects.insert(key, entry);
        self.emit(EventType::Added, resource, namespace, rendered.clone(), None);
        Ok(rendered)
    }

    /// Replaces an object (`subresource` `""` or `"status"`). `managed` is the new ownership
    /// when the caller computed it (apply), else the write is recorded as an update.
    #[allow(clippy::too_many_arguments, reason = "one write, every aspect of it explicit")]
    pub fn update(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        mut object: Value,
        expected_rv: Option<&str>,
        subresource: &str,
        manager: &str,
        managed: Option<Vec<Managed>>,
    ) -> Result<Value, ApiError> {
        let key = Self::key(resource, namespace, name);
        let Some(entry) = self.objects.get(&key) else {
            return Err(ApiError::not_found(resource, name));
        };
        let old = entry.object.clone();
        if let Some(expected) = expected_rv.filter(|e| !e.is_empty())
            && old["metadata"]["resourceVersion"].as_str() != Some(expected)
        {
            return Err(ApiError::conflict(resource, name));
        }
        if resource.status {
            if subresource == "status" {
                let status = object.get("status").cloned();
                object = old.clone();
                match status {
                    Some(status) => object["status"] = status,
                    None => {
                        if let Value::Object(m) = &mut object {
                            m.remove("status");
                        }
                    }
                }
            } else {
                match old.get("status") {
                    Some(status) => object["status"] = status.clone(),
                    None => {
                        if let Value::Object(m) = &mut object {
                            m.remove("status");
                        }
                    }
                }
            }
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old["metadata"].get(field) {
                Some(v) => object["metadata"][field] = v.clone(),
                None => {
                    if let Value::Object(m) = &mut object["metadata"] {
                        m.remove(field);
                    }
                }
            }
        }
        if let Value::Object(m) = &mut object["metadata"] {
            m.remove("managedFields");
        }
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        let mut new_managed = managed.unwrap_or_else(|| {
            let mut m = entry.managed.clone();
            patch::record_update(&old, &object, manager, subresource, &mut m);
            m
        });
        // Unchanged ownership keeps its time; changed or new ownership is stamped now.
        for m in &mut new_managed {
            let same = |p: &&Managed| {
                p.manager == m.manager && p.apply == m.apply && p.subresource == m.subresource && p.fields == m.fields
            };
            m.time = entry
                .managed
                .iter()
                .find(same)
                .map(|p| p.time.clone())
                .unwrap_or_default();
        }
        if object == old && new_managed == entry.managed {
            return Ok(Self::render(entry));
        }
        let time = now();
        for m in new_managed.iter_mut().filter(|m| m.time.is_empty()) {
            m.time.clone_from(&time);
        }
        self.rv += 1;
        if spec_of(&object) != spec_of(&old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let finalized = object["metadata"]["deletionTimestamp"].is_string()
            && object["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        let entry = Entry {
            object,
            managed: new_managed,
        };
        let rendered = Self::render(&entry);
        self.objects.insert(key.clone(), entry);
        if finalized {
            self.objects.remove(&key);
            self.emit(EventType::Deleted, resource, namespace, rendered.clone(), Some(old));
            self.collect_garbage(&rendered, false);
        } else {
            self.emit(EventType::Modified, resource, namespace, rendered.clone(), Some(old));
        }
        Ok(rendered)
    }

    /// Deletes an object: at once without finalizers, else marks it; then its dependents
    /// (background propagation) unless `orphan`.
    pub fn delete(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        orphan: bool,
    ) -> Result<Value, ApiError> {
        let key = Self::key(resource, namespace, name);
        let Some(entry) = self.objects.get_mut(&key) else {
            return Err(ApiError::not_found(resource, name));
        };
        let old = entry.object.clone();
        self.rv += 1;
        let has_finalizers = old["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old["metadata"]["deletionTimestamp"].is_string() {
                return Ok(Self::render(entry));
            }
            entry.object["metadata"]["deletionTimestamp"] = json!(now());
            entry.object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            entry.object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            let rendered = Self::render(entry);
            self.emit(EventType::Modified, resource, namespace, rendered.clone(), Some(old));
            return Ok(rendered);
        }
        let mut removed = self.objects.remove(&key).map(|e| Self::render(&e)).unwrap_or(old);
        removed["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit(EventType::Deleted, resource, namespace, removed.clone(), None);
        if resource.group.is_empty() && resource.plural == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, _, ns, _)| ns == name)
                .cloned()
                .collect();
            for (g, p, ns, n) in inside {
                if let Some(r) = self.resources.iter().find(|r| r.group == g && r.plural == p).cloned() {
                    let _ = self.delete(&r, &ns, &n, false);
                }
            }
        }
        self.collect_garbage(&removed, orphan);
        Ok(removed)
    }

    /// The garbage collector, synchronously: dependents of a deleted owner are deleted, or
    /// lose their owner reference when orphaned.
    fn collect_garbage(&mut self, owner: &Value, orphan: bool) {
        let Some(uid) = owner["metadata"]["uid"].as_str().map(str::to_owned) else {
            return;
        };
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, e)| {
                e.object["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (g, p, ns, n) in dependents {
            let Some(resource) = self.resources.iter().find(|r| r.group == g && r.plural == p).cloned() else {
                continue;
            };
            if orphan {
                let Some(entry) = self.objects.get(&(g.clone(), p.clone(), ns.clone(), n.clone())) else {
                    continue;
                };
                let mut object = entry.object.clone();
                if let Some(refs) = object["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                }
                let _ = self.update(&resource, &ns, &n, object, None, "", "kube-controller-manager", None);
            } else {
                let _ = self.delete(&resource, &ns, &n, false);
            }
        }
    }

    /// Registers the resources of a stored CRD.
    pub fn register(&mut self, resources: Vec<Resource>) {
        for resource in resources {
            self.resources.retain(|r| {
                !(r.group == resource.group && r.version == resource.version && r.plural == resource.plural)
            });
            self.resources.push(resource);
        }
    }
}
