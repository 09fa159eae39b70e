//! `pg_hba.conf` and `pg_ident.conf`: the operator's fixed rules first, then the user's lines,
//! then the catch-all password rule, over TLS only.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cnpg_api::cluster::ClusterSpec;
use cnpg_api::validation::hba::{self, Flavor};
use cnpg_api::validation::{FieldError, Kind};

/// The rules every instance starts with: local peer access mapped to the right roles, and
/// certificate-only access for replication and the pooler.
const FIXED: &[&str] = &[
    "local all cnpg_metrics_exporter peer map=cnpg_metrics_exporter",
    "local all all peer map=local",
    "hostssl postgres streaming_replica all cert map=cnpg_streaming_replica",
    "hostssl replication streaming_replica all cert map=cnpg_streaming_replica",
    "hostssl all cnpg_pooler_pgbouncer all cert map=cnpg_pooler_pgbouncer",
];

/// The password method of the catch-all rule: scram-sha-256 from PostgreSQL 14, md5 before.
pub fn password_method(major: u32) -> &'static str {
    if major >= 14 { "scram-sha-256" } else { "md5" }
}

fn error(path: String, message: String) -> FieldError {
    FieldError {
        path,
        kind: Kind::Invalid,
        message,
    }
}

/// `pg_hba.conf`. `pod_selectors` gives the pod addresses of each `podSelectorRefs` name, for
/// `${podselector:NAME}` addresses (one line per address; none, no line). Every user line is
/// checked first: any refusal returns every problem and no text.
pub fn pg_hba(
    spec: &ClusterSpec,
    major: u32,
    pod_selectors: &BTreeMap<String, Vec<IpAddr>>,
) -> Result<String, Vec<FieldError>> {
    let lines = spec
        .postgresql
        .as_ref()
        .and_then(|p| p.pg_hba.clone())
        .unwrap_or_default();
    let errors: Vec<FieldError> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            hba::check_hba(line, Flavor::Postgres)
                .err()
                .map(|e| error(format!("spec.postgresql.pg_hba[{i}]"), e))
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = String::from("# Written by the cnpg-rs instance manager: do not edit.\n");
    for rule in FIXED {
        out.push_str(rule);
        out.push('\n');
    }
    out.push_str("# From spec.postgresql.pg_hba\n");
    for line in &lines {
        for expanded in expand(line, pod_selectors) {
            out.push_str(&expanded);
            out.push('\n');
        }
    }
    // Unlike CloudNativePG's `host` catch-all, ours requires TLS: a password never crosses the
    // network in clear. A user line (`host ...`) can still open plaintext on purpose.
    out.push_str(&format!("hostssl all all all {}\n", password_method(major)));
    Ok(out)
}

/// A line with its `${podselector:NAME}` address replaced by each pod address.
fn expand(line: &str, pod_selectors: &BTreeMap<String, Vec<IpAddr>>) -> Vec<String> {
    let Some(start) = line.find("${podselector:") else {
        return vec![line.to_owned()];
    };
    let Some(length) = line.get(start..).and_then(|rest| rest.find('}')) else {
        return vec![line.to_owned()];
    };
    let (Some(before), Some(token), Some(after)) = (
        line.get(..start),
        line.get(start..=start + length),
        line.get(start + length + 1..),
    ) else {
        return vec![line.to_owned()];
    };
    let name = token.trim_start_matches("${podselector:").trim_end_matches('}');
    pod_selectors
        .get(name)
        .into_iter()
        .flatten()
        .map(|ip| {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            format!("{before}{ip}/{bits}{after}")
        })
        .collect()
}

/// `pg_ident.conf`; `os_user` is the operating-system user PostgreSQL runs as.
pub fn pg_ident(spec: &ClusterSpec, os_user: &str) -> Result<String, Vec<FieldError>> {
    let lines = spec
        .postgresql
        .as_ref()
        .and_then(|p| p.pg_ident.clone())
        .unwrap_or_default();
    let errors: Vec<FieldError> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            hba::check_ident(line)
                .err()
                .map(|e| error(format!("spec.postgresql.pg_ident[{i}]"), e))
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = String::from("# Written by the cnpg-rs instance manager: do not edit.\n");
    out.push_str(&format!("local {os_user} postgres\n"));
    out.push_str("cnpg_streaming_replica streaming_replica streaming_replica\n");
    out.push_str("cnpg_pooler_pgbouncer cnpg_pooler_pgbouncer cnpg_pooler_pgbouncer\n");
    out.push_str(&format!("cnpg_metrics_exporter {os_user} cnpg_metrics_exporter\n"));
    for line in &lines {
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}
