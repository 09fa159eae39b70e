//! PostgreSQL parameters a user may and may not set in `spec.postgresql.parameters`.
//!
//! Two lists, as CloudNativePG keeps them: parameters the operator computes itself (ports,
//! TLS files, replication, archiving) and parameters that would break the instance manager's
//! control of the server (file locations, logging destinations, crash restarts). A user
//! value for either is refused rather than silently dropped, so nobody is surprised later.

use super::has_control;

/// Set by the operator; a user value would fight it.
pub const FIXED: &[&str] = &[
    "archive_command",
    "archive_mode",
    "cluster_name",
    "pg_failover_slots.primary_dsn",
    "pg_failover_slots.standby_slot_names",
    "port",
    "primary_conninfo",
    "primary_slot_name",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restore_command",
    "shared_preload_libraries",
    "ssl",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_crl_file",
    "ssl_dh_params_file",
    "ssl_key_file",
    "ssl_passphrase_command",
    "ssl_passphrase_command_supports_reload",
    "ssl_prefer_server_ciphers",
    "synchronized_standby_slots",
    "synchronous_standby_names",
    "temp_tablespaces",
];

/// Never settable: they point the server at other files, commands or log sinks.
pub const BLOCKED: &[&str] = &[
    "allow_system_table_mods",
    "archive_cleanup_command",
    "bonjour",
    "bonjour_name",
    "config_file",
    "data_directory",
    "data_sync_retry",
    "event_source",
    "external_pid_file",
    "hba_file",
    "hot_standby",
    "ident_file",
    "jit_provider",
    "listen_addresses",
    "log_destination",
    "log_directory",
    "log_file_mode",
    "log_filename",
    "log_rotation_age",
    "log_rotation_size",
    "log_truncate_on_rotation",
    "logging_collector",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "restart_after_crash",
    "stats_temp_directory",
    "syslog_facility",
    "syslog_ident",
    "syslog_sequence_numbers",
    "syslog_split_messages",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
];

/// Not parameters but directives of PostgreSQL's configuration file parser (case-insensitive):
/// each reads another file, whose settings then override everything written before it
/// (`archive_command`, `ssl_passphrase_command`, `allow_alter_system`, …).
pub const DIRECTIVES: &[&str] = &["include", "include_dir", "include_if_exists"];

/// Whether PostgreSQL's configuration parser would take `name` as a directive, not a setting.
pub fn is_directive(name: &str) -> bool {
    DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// Checks one entry of `shared_preload_libraries`: a library name or path, nothing that could
/// end the setting's quoted value or its line.
pub fn check_library(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '$'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a library name"))
    }
}

/// Whether `name` reads as a parameter name: letters, digits and `_`, not starting with a
/// digit, with at most one `.` (an extension's prefix).
pub fn is_name(name: &str) -> bool {
    let part_ok = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| part_ok(p))
}

/// Checks one parameter; the error says why it is refused.
pub fn check(name: &str, value: &str) -> Result<(), String> {
    if !is_name(name) {
        return Err("is not a parameter name: use letters, digits and '_', with at most one '.'".into());
    }
    if is_directive(name) {
        return Err(format!(
            "{name} is a configuration file directive, not a parameter: it would load settings from another file"
        ));
    }
    // PostgreSQL folds parameter names to lower case.
    let lower = name.to_ascii_lowercase();
    if FIXED.contains(&lower.as_str()) {
        return Err(format!("{name} is managed by the operator and cannot be set"));
    }
    if BLOCKED.contains(&lower.as_str()) {
        return Err(format!(
            "{name} cannot be set: it would take control of the server away from the instance manager"
        ));
    }
    if has_control(value) {
        return Err("the value holds a line break or another control character".into());
    }
    if lower == "wal_level" && value.eq_ignore_ascii_case("minimal") {
        return Err("wal_level `minimal` disables replication and archiving: use `replica` or `logical`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_tune_what_is_theirs() {
        for (name, value) in [
            ("work_mem", "64MB"),
            ("pg_stat_statements.max", "10000"),
            ("wal_level", "replica"),
        ] {
            assert_eq!(check(name, value), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_fixed_blocked_and_smuggled_parameters() {
        for (name, value, why) in [
            ("port", "5433", "managed by the operator"),
            ("SSL_CERT_FILE", "/tmp/x", "managed by the operator"),
            ("archive_command", "curl evil", "managed by the operator"),
            ("listen_addresses", "*", "cannot be set"),
            ("log_directory", "/tmp", "cannot be set"),
            ("work_mem", "4MB\nshared_preload_libraries = 'evil'", "line break"),
            ("work mem", "4MB", "not a parameter name"),
            ("a.b.c", "1", "not a parameter name"),
            ("wal_level", "minimal", "disables replication"),
            ("include", "/x", "directive"),
            ("include_dir", "/x", "directive"),
            ("include_if_exists", "/x", "directive"),
            ("Include_If_Exists", "/x", "directive"),
            ("INCLUDE", "/x", "directive"),
        ] {
            let err = check(name, value).unwrap_err();
            assert!(err.contains(why), "{name}: {err}");
        }
    }
}
