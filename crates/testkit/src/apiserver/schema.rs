//! Structural-schema handling of custom resources, in the order the real server applies it:
//! drop unknown fields and nulls the schema does not allow, check types, formats the
//! schema bounds and required fields, then evaluate the CEL rules (`x-kubernetes-validations`,
//! with `oldSelf` on updates) through kube-cel. Every problem is a [`Cause`] with the field path
//! the real server would report. `pattern` is not checked (our CRDs have none).

use serde_json::{Map, Value};

/// One problem, as a `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

fn cause(reason: &'static str, field: &str, message: String) -> Cause {
    Cause {
        reason,
        field: field.to_owned(),
        message: format!("{field}: {message}"),
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Drops what the schema does not know (unknown fields, disallowed nulls), in place.
pub fn prune(schema: &Value, value: &mut Value, root: bool) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = root || schema["x-kubernetes-embedded-resource"] == true;
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
                match child_schema {
                    Some(child) => {
                        let nullable = child["nullable"] == true;
                        let drop = map.get(&key).is_some_and(Value::is_null) && !nullable;
                        if drop {
                            map.remove(&key);
                        } else if let Some(v) = map.get_mut(&key) {
                            prune(child, v, false);
                        }
                    }
                    None if preserve => {}
                    None => {
                        map.remove(&key);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

/// Checks a pruned value against its schema; `path` names it in messages.
pub fn validate(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if schema["nullable"] != true && !path.is_empty() {
            causes.push(cause("FieldValueRequired", path, "Required value".into()));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_string() || value.as_i64().is_some() || value.as_u64().is_some()) {
            causes.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must be of type integer or string",
                    shown(value)
                ),
            ));
        }
        return;
    }
    let expected = schema["type"].as_str();
    let actual = type_name(value);
    let type_ok = match expected {
        None => true,
        Some("number") => matches!(actual, "number" | "integer"),
        Some(t) => t == actual,
    };
    if !type_ok {
        let want = expected.unwrap_or_default();
        causes.push(cause(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body must be of type {want}: {:?}",
                shown(value),
                actual
            ),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list = allowed.iter().map(Value::to_string).collect::<Vec<_>>().join(", ");
        causes.push(cause(
            "FieldValueNotSupported",
            path,
            format!("Unsupported value: {value}: supported values: {list}"),
        ));
    }
    match value {
        Value::Number(n) => bounds(schema, n.as_f64().unwrap_or_default(), value, path, causes),
        Value::String(s) => {
            let chars = s.chars().count() as u64;
            if schema["maxLength"].as_u64().is_some_and(|max| chars > max) {
                causes.push(cause(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be longer than {}", schema["maxLength"]),
                ));
            }
            if schema["minLength"].as_u64().is_some_and(|min| chars < min) {
                causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {value}: {path} in body should be at least {} chars long",
                        schema["minLength"]
                    ),
                ));
            }
        }
        Value::Array(items) => {
            if schema["maxItems"].as_u64().is_some_and(|max| items.len() as u64 > max) {
                causes.push(cause(
                    "FieldValueTooMany",
                    path,
                    format!(
                        "Too many: {}: must have at most {} items",
                        items.len(),
                        schema["maxItems"]
                    ),
                ));
            }
            if schema["minItems"]
                .as_u64()
                .is_some_and(|min| (items.len() as u64) < min)
            {
                causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {}: {path} in body should have at least {} items",
                        items.len(),
                        schema["minItems"]
                    ),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        Value::Object(map) => object(schema, map, path, causes),
        _ => {}
    }
}

fn bounds(schema: &Value, n: f64, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(min) = schema["minimum"].as_f64() {
        let exclusive = schema["exclusiveMinimum"] == true;
        if n < min || (exclusive && n <= min) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(cause(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {value}: {path} in body should be {relation} {min}"),
            ));
        }
    }
    if let Some(max) = schema["maximum"].as_f64() {
        let exclusive = schema["exclusiveMaximum"] == true;
        if n > max || (exclusive && n >= max) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(cause(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {value}: {path} in body should be {relation} {max}"),
            ));
        }
    }
    if schema["format"] == "int32" && (n < f64::from(i32::MIN) || n > f64::from(i32::MAX)) {
        causes.push(cause(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {value}: {path} in body must be of type int32"),
        ));
    }
}

fn object(schema: &Value, map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for required in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(required) {
            causes.push(cause(
                "FieldValueRequired",
                &join(path, required),
                "Required value".into(),
            ));
        }
    }
    let properties = schema["properties"].as_object();
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        let child_path = match additional {
            Some(_) if properties.is_none_or(|p| !p.contains_key(key)) => format!("{path}[{key}]"),
            _ => join(path, key),
        };
        if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
            validate(child_schema, child, &child_path, causes);
        }
    }
}

/// Evaluates the CEL rules of the schema; `old` is the stored object on updates.
pub fn cel(schema: &Value, value: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let Err(errors) = kube_cel::Validator::new().validate(schema, value, old) else {
        return;
    };
    for error in errors.into_vec() {
        let field = error.field_path.trim_start_matches('.').to_owned();
        let shown = field
            .split('.')
            .try_fold(value, |v, key| v.get(key))
            .map_or("\"object\"".to_owned(), shown);
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("{field}: Invalid value: {shown}: {}", error.message),
            field,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "instances": {"type": "integer", "format": "int32", "minimum": 1.0, "nullable": true},
                        "size": {"type": "string"},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}
                    },
                    "x-kubernetes-validations": [{"rule": "!has(self.mode) || self.mode != 'b' || has(self.instances)", "message": "mode b needs instances"}]
                }
            }
        })
    }

    fn check(value: Value) -> (Value, Vec<String>) {
        let mut value = value;
        prune(&schema(), &mut value, true);
        let mut causes = Vec::new();
        validate(&schema(), &value, "", &mut causes);
        if causes.is_empty() {
            cel(&schema(), &value, None, &mut causes);
        }
        (value, causes.into_iter().map(|c| c.message).collect())
    }

    #[test]
    fn prunes_unknown_fields_and_keeps_metadata() {
        let (value, causes) = check(
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"size": "1", "colour": "blue", "list": [{"n": 1, "m": 2}]}}),
        );
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(
            value,
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"size": "1", "list": [{"n": 1}]}})
        );
    }

    #[test]
    fn reports_what_the_real_server_reports() {
        for (spec, expected) in [
            (
                json!({"size": "1", "instances": 0}),
                "spec.instances: Invalid value: 0: spec.instances in body should be greater than or equal to 1",
            ),
            (
                json!({"size": "1", "instances": "three"}),
                "spec.instances: Invalid value: \"three\": spec.instances in body must be of type integer: \"string\"",
            ),
            (json!({"instances": 1}), "spec.size: Required value"),
            (
                json!({"size": "1", "mode": "c"}),
                "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
            ),
            (
                json!({"size": "1", "port": true}),
                "spec.port: Invalid value: true: spec.port in body must be of type integer or string",
            ),
            (
                json!({"size": "1", "labels": {"a": 1}}),
                "spec.labels[a]: Invalid value: 1: spec.labels[a] in body must be of type string: \"integer\"",
            ),
            (
                json!({"size": "1", "instances": 3_000_000_000_u64}),
                "spec.instances: Invalid value: 3000000000: spec.instances in body must be of type int32",
            ),
            (
                json!({"size": "1", "mode": "b"}),
                "spec: Invalid value: \"object\": mode b needs instances",
            ),
        ] {
            let (_, causes) = check(json!({"spec": spec}));
            assert_eq!(causes, [expected]);
        }
        let (_, causes) = check(json!({"spec": {"size": "1", "port": "https", "mode": "a"}}));
        assert!(causes.is_empty(), "{causes:?}");
    }
}
