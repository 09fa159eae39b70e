//! The name rules of Kubernetes and PostgreSQL that our objects must follow.

/// RFC 1035 label (a Service name): lower-case alphanumerics and `-`, starting with a letter,
/// ending with an alphanumeric, at most `max` characters.
pub fn dns_1035_label(name: &str, max: usize) -> Result<(), String> {
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("{name:?} must start with a lower-case letter"));
    }
    dns_1123_label(name, max)
}

/// RFC 1123 label: lower-case alphanumerics and `-`, alphanumeric at both ends.
pub fn dns_1123_label(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() || name.len() > max {
        return Err(format!("{name:?} must be 1 to {max} characters long"));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let body_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !body_ok || !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return Err(format!(
            "{name:?} must consist of lower-case letters, digits and '-', and start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain (most object names): dot-separated labels, at most 253 characters.
pub fn dns_1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} must be 1 to 253 characters long"));
    }
    for label in name.split('.') {
        dns_1123_label(label, 63).map_err(|_| format!("{name:?} is not a valid DNS subdomain name"))?;
    }
    Ok(())
}

/// A PostgreSQL role or database name the operator manages. Stricter than PostgreSQL (which
/// takes anything quoted): letters, digits, `_`, `$` and `-`, starting with a letter or `_`,
/// at most 63 bytes (NAMEDATALEN - 1).
pub fn pg_identifier(name: &str) -> Result<(), String> {
    let first_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-'));
    if !first_ok || !rest_ok || name.len() > 63 {
        return Err(format!(
            "{name:?} must be 1 to 63 letters, digits, '_', '$' or '-', starting with a letter or '_'"
        ));
    }
    Ok(())
}

/// Roles the operator creates and relies on: a user may not define or own with them.
pub const RESERVED_ROLES: [&str; 4] = [
    "postgres",
    "streaming_replica",
    "cnpg_pooler_pgbouncer",
    "cnpg_metrics_exporter",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names() {
        assert!(dns_1035_label("cluster-example", 50).is_ok());
        assert!(
            dns_1035_label("1cluster", 50)
                .unwrap_err()
                .contains("start with a lower-case letter")
        );
        assert!(dns_1035_label("Cluster", 50).is_err());
        assert!(dns_1035_label("cluster-", 50).is_err());
        assert!(dns_1035_label(&"a".repeat(51), 50).unwrap_err().contains("1 to 50"));
        assert!(dns_1123_subdomain("my.service-account").is_ok());
        assert!(dns_1123_subdomain("my..sa").is_err());
        assert!(dns_1123_subdomain("UPPER").is_err());
    }

    #[test]
    fn postgres_names() {
        assert!(pg_identifier("app").is_ok());
        assert!(pg_identifier("_app$2-x").is_ok());
        assert!(pg_identifier("app; DROP ROLE x").is_err());
        assert!(pg_identifier("2app").is_err());
        assert!(pg_identifier("").is_err());
        assert!(pg_identifier(&"a".repeat(64)).is_err());
    }
}
