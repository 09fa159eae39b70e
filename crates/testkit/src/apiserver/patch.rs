//! The four ways to change an object besides replacing it: JSON merge patch (RFC 7386),
//! strategic merge patch (built-in kinds only; lists of objects merge on a key such as `name`),
//! JSON patch (RFC 6902, through the json-patch crate), and server-side apply, whose field
//! ownership lives in [`Managed`] entries rendered as `metadata.managedFields`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A field: the keys leading to it. Lists are atomic, as for CRDs without list-type
/// annotations.
pub type Field = Vec<String>;

/// RFC 7386.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

const MERGE_KEYS: [&str; 6] = ["name", "containerPort", "mountPath", "uid", "type", "port"];

/// The key a list of objects merges on, when every element has it.
fn merge_key(a: &[Value], b: &[Value]) -> Option<&'static str> {
    MERGE_KEYS
        .into_iter()
        .find(|key| a.iter().chain(b).all(|v| v.get(key).is_some()) && b.iter().all(Value::is_object) && !b.is_empty())
}

/// Strategic merge patch, as far as our components use it: maps merge, `null` deletes, lists of
/// objects merge on their key (`$patch: delete` removes an element), other lists are replaced.
pub fn strategic(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if key.starts_with('$') {
                    continue;
                }
                if value.is_null() {
                    target.remove(key);
                } else {
                    strategic(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (Value::Array(target), Value::Array(patch)) if merge_key(target, patch).is_some() => {
            let key = merge_key(target, patch).unwrap_or("name");
            for item in patch {
                let position = target.iter().position(|t| t.get(key) == item.get(key));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        target.remove(i);
                    }
                    (Some(i), false) => {
                        if let Some(existing) = target.get_mut(i) {
                            strategic(existing, item);
                        }
                    }
                    (None, false) => target.push(item.clone()),
                    (None, true) => {}
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// RFC 6902 (with `test`).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let patch: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| e.to_string())?;
    json_patch::patch(target, &patch).map_err(|e| e.to_string())
}

/// Who owns which fields, and how they came to (`Apply` or `Update`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    pub manager: String,
    pub apply: bool,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<Field>,
}

impl Managed {
    /// One `managedFields` entry.
    pub fn render(&self) -> Value {
        let mut tree = Map::new();
        for field in &self.fields {
            let mut node = &mut tree;
            for key in field {
                let entry = node.entry(format!("f:{key}")).or_insert_with(|| json!({}));
                let Value::Object(next) = entry else { break };
                node = next;
            }
        }
        let mut entry = json!({
            "manager": self.manager,
            "operation": if self.apply { "Apply" } else { "Update" },
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": tree,
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }
}

/// Metadata the server owns: never a field anybody manages.
fn server_owned(field: &[String]) -> bool {
    match field {
        [top] => matches!(top.as_str(), "apiVersion" | "kind"),
        [meta, key, ..] if meta == "metadata" => !matches!(
            key.as_str(),
            "labels" | "annotations" | "finalizers" | "ownerReferences"
        ),
        _ => false,
    }
}

/// The leaf fields of an object: scalars, lists and empty objects.
pub fn fields(value: &Value) -> BTreeSet<Field> {
    fn walk(value: &Value, prefix: &mut Field, out: &mut BTreeSet<Field>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    prefix.push(key.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ if !prefix.is_empty() && !server_owned(prefix) => {
                out.insert(prefix.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

pub fn get<'a>(value: &'a Value, field: &[String]) -> Option<&'a Value> {
    field.iter().try_fold(value, |v, k| v.get(k))
}

fn set(value: &mut Value, field: &[String], new: Value) {
    let Some((last, parents)) = field.split_last() else {
        return;
    };
    let mut node = value;
    for key in parents {
        if !node.get(key).is_some_and(Value::is_object) {
            node[key.as_str()] = json!({});
        }
        node = &mut node[key.as_str()];
    }
    node[last.as_str()] = new;
}

fn remove(value: &mut Value, field: &[String]) {
    let Some((last, parents)) = field.split_last() else {
        return;
    };
    if let Some(Value::Object(map)) = parents.iter().try_fold(value, |v, k| v.get_mut(k)) {
        map.remove(last);
    }
}

/// Do two fields overlap (one is the other or contains it)?
fn overlap(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Server-side apply of `applied` by `manager` onto `current`, in `subresource` (`""` or
/// `"status"`). On success returns the new object and updates `managed`; on conflict returns
/// `(manager, field)` pairs.
pub fn apply(
    current: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: &str,
    managed: &mut Vec<Managed>,
) -> Result<Value, Vec<(String, String)>> {
    let applied_fields = fields(applied);
    let mut conflicts = Vec::new();
    for entry in managed.iter().filter(|e| e.manager != manager) {
        for owned in &entry.fields {
            for field in applied_fields.iter().filter(|f| overlap(f, owned)) {
                if get(current, owned) != get(applied, owned) || get(current, field) != get(applied, field) {
                    conflicts.push((entry.manager.clone(), format!(".{}", field.join("."))));
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    if force {
        for entry in managed.iter_mut().filter(|e| e.manager != manager) {
            entry.fields.retain(|owned| {
                !applied_fields
                    .iter()
                    .any(|f| overlap(f, owned) && get(current, owned) != get(applied, owned))
            });
        }
    }
    let mut new = current.clone();
    let previous = managed
        .iter()
        .find(|e| e.manager == manager && e.apply && e.subresource == subresource)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for dropped in previous.difference(&applied_fields) {
        let still_owned = managed
            .iter()
            .any(|e| e.manager != manager && e.fields.iter().any(|f| overlap(f, dropped)));
        if !still_owned {
            remove(&mut new, dropped);
        }
    }
    for field in &applied_fields {
        if let Some(value) = get(applied, field) {
            set(&mut new, field, value.clone());
        }
    }
    managed.retain(|e| !(e.manager == manager && e.apply && e.subresource == subresource));
    managed.push(Managed {
        manager: manager.to_owned(),
        apply: true,
        subresource: subresource.to_owned(),
        api_version: applied["apiVersion"].as_str().unwrap_or_default().to_owned(),
        time: String::new(),
        fields: applied_fields,
    });
    managed.retain(|e| !e.fields.is_empty());
    Ok(new)
}

/// Records a non-apply write: `manager` now owns every field it changed; removed fields are
/// owned by nobody.
pub fn record_update(old: &Value, new: &Value, manager: &str, subresource: &str, managed: &mut Vec<Managed>) {
    let before = fields(old);
    let after = fields(new);
    let changed: BTreeSet<Field> = before
        .union(&after)
        .filter(|f| get(old, f) != get(new, f))
        .cloned()
        .collect();
    if changed.is_empty() {
        return;
    }
    for entry in managed.iter_mut() {
        entry
            .fields
            .retain(|owned| !changed.iter().any(|c| overlap(c, owned)) || get(old, owned) == get(new, owned));
    }
    let gained: BTreeSet<Field> = changed.into_iter().filter(|f| after.contains(f)).collect();
    if !gained.is_empty() {
        match managed
            .iter_mut()
            .find(|e| e.manager == manager && !e.apply && e.subresource == subresource)
        {
            Some(entry) => entry.fields.extend(gained),
            None => managed.push(Managed {
                manager: manager.to_owned(),
                apply: false,
                subresource: subresource.to_owned(),
                api_version: new["apiVersion"].as_str().unwrap_or_default().to_owned(),
                time: String::new(),
                fields: gained,
            }),
        }
    }
    managed.retain(|e| !e.fields.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge(&mut doc, &json!({"a": null, "b": {"c": 5}, "l": [3]}));
        assert_eq!(doc, json!({"b": {"c": 5, "d": 3}, "l": [3]}));
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        strategic(
            &mut pod,
            &json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "a", "$patch": "delete"}]}}),
        );
        assert_eq!(pod, json!({"spec": {"containers": [{"name": "b", "image": "z"}]}}));
        let mut doc = json!({"metadata": {"finalizers": ["a"]}});
        json_patch(&mut doc, &json!([{"op": "test", "path": "/metadata/finalizers", "value": ["a"]}, {"op": "remove", "path": "/metadata/finalizers/0"}])).unwrap();
        assert_eq!(doc, json!({"metadata": {"finalizers": []}}));
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "test", "path": "/metadata/finalizers", "value": ["a"]}])
            )
            .is_err()
        );
    }

    #[test]
    fn apply_owns_sets_removes_and_conflicts() {
        let mut managed = Vec::new();
        let a1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"k": "v", "gone": "soon"}});
        let obj = apply(&json!({}), &a1, "a", false, "", &mut managed).unwrap();
        assert_eq!(obj["data"], json!({"k": "v", "gone": "soon"}));
        // Another writer changes a field a owns, by update: ownership moves.
        let mut edited = obj.clone();
        edited["data"]["k"] = json!("w");
        record_update(&obj, &edited, "b", "", &mut managed);
        // a applies again without `gone` and with its old `k`: conflict with b on data.k.
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"k": "v"}});
        let conflicts = apply(&edited, &a2, "a", false, "", &mut managed.clone()).unwrap_err();
        assert_eq!(conflicts, [("b".to_owned(), ".data.k".to_owned())]);
        // Forced, it wins, and `gone`, which a alone owned, is removed.
        let forced = apply(&edited, &a2, "a", true, "", &mut managed).unwrap();
        assert_eq!(forced["data"], json!({"k": "v"}));
        assert_eq!(forced["metadata"]["labels"], json!({"x": "1"}));
        let rendered: Vec<Value> = managed.iter().map(Managed::render).collect();
        assert_eq!(rendered.len(), 1, "b lost its only field: {rendered:#?}");
        assert_eq!(rendered[0]["fieldsV1"]["f:data"], json!({"f:k": {}}));
    }
}
