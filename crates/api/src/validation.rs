//! Validation of every kind, as pure functions: an object (and, on update, the object it
//! replaces) in, every problem out, each with the JSON path of the field at fault. The
//! admission webhook turns the list into its denial, the reconciler into the `Invalid cluster
//! definition` phase, and the API stand-in into a 422.

use std::fmt;

mod backup;
mod barman;
mod catalog;
mod cluster;
pub mod hba;
pub mod names;
pub mod parameters;
mod pooler;
pub mod quantity;

pub use backup::{backup, scheduled_backup, scheduled_backup_update};
pub use catalog::catalog;
pub use cluster::{cluster, cluster_update, major_of_image};
pub use pooler::{pooler, pooler_update};

/// What is wrong with a field, in the words of the Kubernetes API's status causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Required,
    Invalid,
    NotSupported,
    Forbidden,
    Duplicate,
    Immutable,
}

impl Kind {
    /// The `reason` of a `StatusCause`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid | Self::Immutable => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::Duplicate => "FieldValueDuplicate",
        }
    }
}

/// One problem: where, what kind, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `spec.postgresql.pg_hba[2]`, `spec.postgresql.parameters[port]`.
    pub path: String,
    pub kind: Kind,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Joins problems into one line, as an admission denial reads.
pub fn summary(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Collects problems while a validator walks an object.
#[derive(Default)]
pub(crate) struct Report(Vec<FieldError>);

impl Report {
    pub(crate) fn push(&mut self, path: impl Into<String>, kind: Kind, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            kind,
            message: message.into(),
        });
    }

    pub(crate) fn required(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(path, Kind::Required, message);
    }

    pub(crate) fn invalid(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(path, Kind::Invalid, message);
    }

    pub(crate) fn forbidden(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(path, Kind::Forbidden, message);
    }

    pub(crate) fn immutable(&mut self, path: impl Into<String>) {
        self.push(path, Kind::Immutable, "is immutable once set");
    }

    /// `value` must be one of `allowed`.
    pub(crate) fn one_of(&mut self, path: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(value) = value
            && !allowed.contains(&value)
        {
            let allowed = allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
            self.push(
                path,
                Kind::NotSupported,
                format!("{value:?} is not supported: use one of {allowed}"),
            );
        }
    }

    /// `value`, when set, must be at least `min`.
    pub(crate) fn at_least(&mut self, path: &str, value: Option<impl Into<i64>>, min: i64) {
        if let Some(value) = value.map(Into::into)
            && value < min
        {
            self.invalid(path, format!("{value} is less than the minimum, {min}"));
        }
    }

    /// Names in a list must not repeat.
    pub(crate) fn unique<'a>(&mut self, path: &str, names: impl IntoIterator<Item = &'a str>) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, name) in names.into_iter().enumerate() {
            if !seen.insert(name) {
                self.push(
                    format!("{path}[{i}].name"),
                    Kind::Duplicate,
                    format!("{name:?} appears more than once"),
                );
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<FieldError> {
        self.0
    }
}

/// Text that ends up in a configuration file must hold no line break or other control
/// character: one could smuggle a second directive in.
pub(crate) fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}
