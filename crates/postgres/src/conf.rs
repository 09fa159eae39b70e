//! `postgresql.conf` and the two files it includes: `custom.conf` (every setting the operator
//! decides, the user's parameters among them) and `override.conf` (how a replica follows its
//! primary). custom.conf ends with a hash of its settings, so a change is visible in
//! `SHOW cnpg.config_sha256`.

use std::collections::BTreeMap;

use cnpg_api::cluster::ClusterSpec;
use cnpg_api::validation::{FieldError, Kind, parameters};
use openssl::hash::{MessageDigest, hash};

use crate::paths::{PORT, Paths};

/// Defaults a user may override (except the logging ones, which are blocked for users).
const DEFAULTS: &[(&str, &str)] = &[
    ("archive_timeout", "5min"),
    ("dynamic_shared_memory_type", "posix"),
    ("full_page_writes", "on"),
    ("logging_collector", "on"),
    ("log_destination", "csvlog"),
    ("log_filename", "postgres"),
    ("log_rotation_age", "0"),
    ("log_rotation_size", "0"),
    ("log_truncate_on_rotation", "false"),
    ("max_parallel_workers", "32"),
    ("max_replication_slots", "32"),
    ("max_worker_processes", "32"),
    ("shared_memory_type", "mmap"),
    ("ssl_max_protocol_version", "TLSv1.3"),
    ("ssl_min_protocol_version", "TLSv1.3"),
    ("wal_keep_size", "512MB"),
    ("wal_level", "logical"),
    ("wal_log_hints", "on"),
    ("wal_receiver_timeout", "5s"),
    ("wal_sender_timeout", "5s"),
];

/// Extension parameter prefixes that need their library preloaded.
const PRELOADED_BY_PREFIX: &[(&str, &str)] = &[
    ("pgaudit.", "pgaudit"),
    ("pg_stat_statements.", "pg_stat_statements"),
    ("auto_explain.", "auto_explain"),
    ("pg_failover_slots.", "pg_failover_slots"),
];

/// Where a replica streams from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The primary's address (`<cluster>-rw` in a cluster).
    pub host: String,
    pub port: u16,
    /// This instance's name, as the primary sees it (`pg_stat_replication.application_name`).
    pub application_name: String,
    /// The replication slot this replica uses on the primary.
    pub slot: Option<String>,
    /// `tcp_user_timeout` in milliseconds (CNPG_STANDBY_TCP_USER_TIMEOUT, 5000 by default).
    pub tcp_user_timeout_ms: u32,
}

/// What the instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica(Upstream),
}

/// The rendered files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub custom_conf: String,
    pub override_conf: String,
    /// The SHA-256 of custom.conf's settings, as `cnpg.config_sha256` reports it.
    pub hash: String,
}

/// A value as a postgresql.conf string literal.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A value in a libpq connection string.
fn conninfo_value(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c)) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// The libpq connection string a replica streams with: certificate authentication as
/// `streaming_replica`, the server verified against the cluster CA.
pub fn primary_conninfo(upstream: &Upstream, paths: &Paths) -> String {
    let certificates = &paths.certificates;
    [
        ("host", upstream.host.clone()),
        ("port", upstream.port.to_string()),
        ("user", "streaming_replica".to_owned()),
        ("dbname", "postgres".to_owned()),
        ("application_name", upstream.application_name.clone()),
        ("sslmode", "verify-ca".to_owned()),
        (
            "sslcert",
            certificates.join("streaming_replica.crt").display().to_string(),
        ),
        (
            "sslkey",
            certificates.join("streaming_replica.key").display().to_string(),
        ),
        ("sslrootcert", certificates.join("server-ca.crt").display().to_string()),
        ("tcp_user_timeout", upstream.tcp_user_timeout_ms.to_string()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", conninfo_value(v)))
    .collect::<Vec<_>>()
    .join(" ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `name = 'value'` line per setting. Checked again here, whatever validation passed: a
/// name PostgreSQL would read as a directive (`include …`) or that is not a plain identifier,
/// or a value with a control character, would let the file say more than its settings.
fn settings_lines(settings: &BTreeMap<String, String>) -> Result<String, FieldError> {
    let mut body = String::new();
    for (name, value) in settings {
        let refusal = if parameters::is_directive(name) {
            Some(format!("{name} is a configuration file directive, not a parameter"))
        } else if !parameters::is_name(name) {
            Some(format!("{name:?} is not a parameter name"))
        } else if value.chars().any(char::is_control) {
            Some("the value holds a line break or another control character".to_owned())
        } else {
            None
        };
        if let Some(message) = refusal {
            return Err(FieldError {
                path: format!("spec.postgresql.parameters[{name}]"),
                kind: Kind::Invalid,
                message,
            });
        }
        body.push_str(&format!("{name} = {}\n", quote(value)));
    }
    Ok(body)
}

/// Renders custom.conf and override.conf. User parameters are checked first: a fixed, blocked
/// or malformed one returns every problem and no text.
pub fn render(
    spec: &ClusterSpec,
    cluster_name: &str,
    major: u32,
    paths: &Paths,
    role: &Role,
) -> Result<Rendered, Vec<FieldError>> {
    let user = spec
        .postgresql
        .as_ref()
        .and_then(|p| p.parameters.clone())
        .unwrap_or_default();
    let libraries: Vec<String> = spec
        .postgresql
        .as_ref()
        .and_then(|p| p.shared_preload_libraries.clone())
        .unwrap_or_default();
    let errors: Vec<FieldError> = user
        .iter()
        .filter_map(|(name, value)| {
            parameters::check(name, value).err().map(|message| FieldError {
                path: format!("spec.postgresql.parameters[{name}]"),
                kind: Kind::Invalid,
                message,
            })
        })
        .chain(libraries.iter().enumerate().filter_map(|(i, library)| {
            parameters::check_library(library).err().map(|message| FieldError {
                path: format!("spec.postgresql.shared_preload_libraries[{i}]"),
                kind: Kind::Invalid,
                message,
            })
        }))
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut settings: BTreeMap<String, String> = DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    settings.insert("log_directory".into(), paths.logs.display().to_string());
    settings.extend(user.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));

    let mut libraries = libraries;
    for (prefix, library) in PRELOADED_BY_PREFIX {
        if user.keys().any(|k| k.to_ascii_lowercase().starts_with(prefix)) {
            libraries.push((*library).to_owned());
        }
    }
    libraries.sort();
    libraries.dedup();
    let manager = paths.manager.display();
    let logs = paths.logs.display();
    let certificates = &paths.certificates;
    let mandatory = [
        (
            "archive_command",
            format!("{manager} wal-archive --log-destination {logs}/postgres.json %p"),
        ),
        ("archive_mode", "on".to_owned()),
        ("cluster_name", cluster_name.to_owned()),
        ("hot_standby", "true".to_owned()),
        ("listen_addresses", paths.listen_addresses.clone()),
        ("port", PORT.to_string()),
        ("restart_after_crash", "false".to_owned()),
        ("shared_preload_libraries", libraries.join(",")),
        ("ssl", "on".to_owned()),
        ("ssl_ca_file", certificates.join("client-ca.crt").display().to_string()),
        ("ssl_cert_file", certificates.join("server.crt").display().to_string()),
        ("ssl_key_file", certificates.join("server.key").display().to_string()),
        ("unix_socket_directories", paths.sockets.display().to_string()),
    ];
    settings.extend(mandatory.into_iter().map(|(k, v)| (k.to_owned(), v)));
    if major >= 17 {
        let allowed = spec
            .postgresql
            .as_ref()
            .and_then(|p| p.enable_alter_system)
            .unwrap_or(false);
        settings.insert("allow_alter_system".into(), if allowed { "on" } else { "off" }.into());
    }

    let body = settings_lines(&settings).map_err(|e| vec![e])?;
    let digest = hash(MessageDigest::sha256(), body.as_bytes())
        .map(|d| hex(&d))
        .unwrap_or_default();
    let custom_conf = format!(
        "# Written by the cnpg-rs instance manager from the Cluster: do not edit.\n{body}cnpg.config_sha256 = {}\n",
        quote(&digest)
    );

    let mut override_conf =
        String::from("# Written by the cnpg-rs instance manager: how this instance follows its primary.\n");
    if let Role::Replica(upstream) = role {
        let restore = format!("{manager} wal-restore --log-destination {logs}/postgres.json %f %p");
        override_conf.push_str(&format!(
            "primary_conninfo = {}\n",
            quote(&primary_conninfo(upstream, paths))
        ));
        if let Some(slot) = &upstream.slot {
            override_conf.push_str(&format!("primary_slot_name = {}\n", quote(slot)));
        }
        override_conf.push_str("recovery_target_timeline = 'latest'\n");
        override_conf.push_str(&format!("restore_command = {}\n", quote(&restore)));
    }
    Ok(Rendered {
        custom_conf,
        override_conf,
        hash: digest,
    })
}

/// The include lines postgresql.conf needs; the rest of the file is initdb's and stays.
pub const INCLUDES: &str = "include 'custom.conf'\ninclude 'override.conf'\n";

/// initdb's postgresql.conf with our includes appended once.
pub fn with_includes(postgresql_conf: &str) -> String {
    if postgresql_conf.contains(INCLUDES) {
        return postgresql_conf.to_owned();
    }
    let mut out = postgresql_conf.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("# cnpg-rs: everything below wins over the settings above.\n");
    out.push_str(INCLUDES);
    out
}

/// The HA replication slot name of an instance: `_cnpg_` + its name, lower case, with
/// everything outside `[0-9a-z_]` turned into `_`.
pub fn slot_name(prefix: &str, instance: &str) -> String {
    let tail: String = instance
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_refuses_directives_and_smuggled_lines_whatever_validation_said() {
        let one = |name: &str, value: &str| {
            settings_lines(&BTreeMap::from([
                ("work_mem".to_owned(), "8MB".to_owned()),
                (name.to_owned(), value.to_owned()),
            ]))
        };
        assert_eq!(
            one("search_path", "\"$user\", it's").as_deref(),
            Ok("search_path = '\"$user\", it''s'\nwork_mem = '8MB'\n")
        );
        for (name, value, why) in [
            ("include", "/x", "directive"),
            ("Include_Dir", "/x", "directive"),
            ("include_if_exists", "/x", "directive"),
            ("a = 1\nb", "1", "not a parameter name"),
            ("", "1", "not a parameter name"),
            ("work_mem", "1MB\nport = 1", "control character"),
        ] {
            let err = one(name, value).unwrap_err();
            assert!(err.message.contains(why), "{name:?}: {}", err.message);
            assert_eq!(err.path, format!("spec.postgresql.parameters[{name}]"));
        }
    }
}
