//! `Pooler` validation.

use super::hba::{self, Flavor};
use super::{FieldError, Report, has_control, names};
use crate::pooler::Pooler;

/// PgBouncer settings a Pooler may set; everything else the sidecar owns.
pub const PGBOUNCER_PARAMETERS: &[&str] = &[
    "application_name_add_host",
    "auth_type",
    "auth_user",
    "autodb_idle_timeout",
    "cancel_wait_timeout",
    "client_idle_timeout",
    "client_login_timeout",
    "client_tls13_ciphers",
    "client_tls_ciphers",
    "client_tls_sslmode",
    "default_pool_size",
    "disable_pqexec",
    "dns_max_ttl",
    "dns_nxdomain_ttl",
    "idle_transaction_timeout",
    "ignore_startup_parameters",
    "listen_backlog",
    "log_connections",
    "log_disconnections",
    "log_pooler_errors",
    "log_stats",
    "max_client_conn",
    "max_db_connections",
    "max_packet_size",
    "max_prepared_statements",
    "max_user_connections",
    "min_pool_size",
    "pkt_buf",
    "query_timeout",
    "query_wait_timeout",
    "reserve_pool_size",
    "reserve_pool_timeout",
    "sbuf_loopcnt",
    "server_check_delay",
    "server_check_query",
    "server_connect_timeout",
    "server_fast_close",
    "server_idle_timeout",
    "server_lifetime",
    "server_login_retry",
    "server_reset_query",
    "server_reset_query_always",
    "server_round_robin",
    "server_tls13_ciphers",
    "server_tls_ciphers",
    "server_tls_protocols",
    "server_tls_sslmode",
    "stats_period",
    "suspend_timeout",
    "tcp_defer_accept",
    "tcp_keepalive",
    "tcp_keepcnt",
    "tcp_keepidle",
    "tcp_keepintvl",
    "tcp_socket_buffer",
    "tcp_user_timeout",
    "track_extra_parameters",
    "verbose",
];

/// Every problem of a Pooler.
pub fn pooler(pooler: &Pooler) -> Vec<FieldError> {
    let mut report = Report::default();
    let name = pooler.metadata.name.as_deref().unwrap_or_default();
    // The pooler's Service carries its name.
    if let Err(e) = names::dns_1035_label(name, 63) {
        report.invalid("metadata.name", e);
    }
    let spec = &pooler.spec;
    let cluster = spec.cluster.name.as_str();
    if cluster.is_empty() {
        report.required("spec.cluster.name", "name the Cluster to pool connections to");
    } else if [String::new(), "-rw".into(), "-ro".into(), "-r".into(), "-any".into()]
        .iter()
        .any(|suffix| name == format!("{cluster}{suffix}"))
    {
        report.invalid(
            "metadata.name",
            format!("{name:?} would collide with a Service of cluster {cluster:?}"),
        );
    }
    report.one_of("spec.type", spec.pooler_type.as_deref(), &["rw", "ro", "r"]);
    report.at_least("spec.instances", spec.instances, 0);
    let bouncer = &spec.pgbouncer;
    report.one_of(
        "spec.pgbouncer.poolMode",
        bouncer.pool_mode.as_deref(),
        &["session", "transaction"],
    );
    for (key, value) in bouncer.parameters.iter().flatten() {
        let path = format!("spec.pgbouncer.parameters[{key}]");
        if !PGBOUNCER_PARAMETERS.contains(&key.as_str()) {
            report.forbidden(path, format!("{key} cannot be set on a Pooler"));
        } else if has_control(value) {
            report.invalid(path, "the value holds a line break or another control character");
        }
    }
    for (i, line) in bouncer.pg_hba.iter().flatten().enumerate() {
        if let Err(e) = hba::check_hba(line, Flavor::PgBouncer) {
            report.invalid(format!("spec.pgbouncer.pg_hba[{i}]"), e);
        }
    }
    if bouncer.auth_query_secret.is_some() && bouncer.auth_query.is_none() {
        report.required(
            "spec.pgbouncer.authQuery",
            "a custom authQuerySecret needs its authQuery",
        );
    }
    if bouncer.auth_query.as_deref().is_some_and(has_control) {
        report.invalid(
            "spec.pgbouncer.authQuery",
            "holds a line break or another control character",
        );
    }
    report.finish()
}

/// Every problem of an update.
pub fn pooler_update(old: &Pooler, new: &Pooler) -> Vec<FieldError> {
    let mut report = Report(pooler(new));
    if old.spec.cluster != new.spec.cluster {
        report.immutable("spec.cluster");
    }
    report.finish()
}
