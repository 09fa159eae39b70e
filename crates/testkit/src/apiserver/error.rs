//! Failures as the real server reports them: a `Status` object with code, reason and causes.

use serde_json::{Value, json};

use super::resources::Resource;
use super::schema::Cause;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(resource: &Resource, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified()),
        );
        e.details = Some(json!({"name": name, "group": resource.group, "kind": resource.plural}));
        e
    }

    pub fn conflict(resource: &Resource, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified()
            ),
        );
        e.details = Some(json!({"name": name, "group": resource.group, "kind": resource.plural}));
        e
    }

    /// 422: the object breaks its schema or its rules.
    pub fn invalid(resource: &Resource, name: &str, causes: Vec<Cause>) -> Self {
        let summary = causes.iter().map(|c| c.message.clone()).collect::<Vec<_>>();
        let summary = if summary.len() == 1 {
            summary.concat()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {summary}", resource.qualified_kind()),
        );
        e.details = Some(json!({
            "name": name,
            "group": resource.group,
            "kind": resource.kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        }));
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}
