//! Label and field selectors, in the syntax of `?labelSelector=` and `?fieldSelector=`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    Absent(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed selector; an empty one matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(text.get(start..).unwrap_or_default());
    terms.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

fn set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or(format!("expected (values), got {text:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

impl Selector {
    /// Parses `a=b,c!=d,e in (f,g),!h,i`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in terms(text) {
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::Absent(key.trim().to_owned())
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, values)) = term.split_once(" notin ") {
                Requirement::NotIn(key.trim().to_owned(), set(values)?)
            } else if let Some((key, values)) = term.split_once(" in ") {
                Requirement::In(key.trim().to_owned(), set(values)?)
            } else if term.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Requirement::Exists(term.to_owned())
            } else {
                return Err(format!("unable to parse requirement: {term:?}"));
            };
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    /// Does `lookup` (key → value) satisfy every requirement?
    fn matches_with(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => lookup(k).is_some(),
            Requirement::Absent(k) => lookup(k).is_none(),
            Requirement::Equals(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Requirement::In(k, vs) => lookup(k).is_some_and(|x| vs.contains(&x)),
            Requirement::NotIn(k, vs) => lookup(k).is_none_or(|x| !vs.contains(&x)),
        })
    }

    /// Label selector semantics: keys are labels of the object.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.matches_with(|k| labels.get(k).and_then(Value::as_str).map(str::to_owned))
    }

    /// Field selector semantics: keys are dotted paths into the object (`metadata.name`,
    /// `status.phase`). The real server allows only some fields per kind; this allows any.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches_with(|path| {
            let value = path.split('.').try_fold(object, |v, k| v.get(k))?;
            match value {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "db", "labels": {"cnpg.io/cluster": "pg", "role": "primary"}}});
        for (selector, matches) in [
            ("", true),
            ("cnpg.io/cluster=pg", true),
            ("cnpg.io/cluster==pg,role=primary", true),
            ("cnpg.io/cluster=other", false),
            ("role!=replica", true),
            ("role in (primary, replica)", true),
            ("role notin (primary)", false),
            ("cnpg.io/cluster", true),
            ("!cnpg.io/cluster", false),
            ("!absent", true),
        ] {
            assert_eq!(
                Selector::parse(selector).unwrap().matches_labels(&pod),
                matches,
                "{selector}"
            );
        }
        assert!(Selector::parse("a in b").is_err());
        let fields = Selector::parse("metadata.name=p,metadata.namespace!=kube-system").unwrap();
        assert!(fields.matches_fields(&pod));
        assert!(!Selector::parse("metadata.name=q").unwrap().matches_fields(&pod));
    }
}
