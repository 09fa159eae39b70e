//! `Cluster` validation: on create, every rule on the new object; on update, the same plus
//! what may not change once the cluster exists.

use super::hba::{self, Flavor};
use super::names::{self, RESERVED_ROLES};
use super::{FieldError, Report, has_control, parameters, quantity};
use crate::SUPPORTED_MAJORS;
use crate::cluster::{Cluster, ClusterSpec, StorageConfiguration};

/// Every problem of a Cluster.
pub fn cluster(cluster: &Cluster) -> Vec<FieldError> {
    let mut report = Report::default();
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    // Pods are `<name>-<n>` and jobs `<name>-<n>-<purpose>`: 50 leaves room for both.
    if let Err(e) = names::dns_1035_label(name, 50) {
        report.invalid("metadata.name", e);
    }
    let spec = &cluster.spec;
    image(&mut report, spec);
    topology(&mut report, spec);
    postgresql(&mut report, spec);
    bootstrap(&mut report, spec);
    storage(&mut report, "spec.storage", spec.storage.as_ref(), true);
    storage(&mut report, "spec.walStorage", spec.wal_storage.as_ref(), false);
    lifecycle(&mut report, spec);
    security(&mut report, spec);
    roles(&mut report, spec);
    report.finish()
}

/// Every problem of an update from `old` to `new`.
pub fn cluster_update(old: &Cluster, new: &Cluster) -> Vec<FieldError> {
    let mut report = Report(cluster(new));
    let (old, new) = (&old.spec, &new.spec);
    if old.postgres_uid() != new.postgres_uid() {
        report.immutable("spec.postgresUID");
    }
    if old.postgres_gid() != new.postgres_gid() {
        report.immutable("spec.postgresGID");
    }
    if old.service_account_name.is_some() && old.service_account_name != new.service_account_name {
        report.immutable("spec.serviceAccountName");
    }
    if old.bootstrap.is_some() && old.bootstrap != new.bootstrap {
        report.immutable("spec.bootstrap");
    }
    if old.wal_storage.is_some() && new.wal_storage.is_none() {
        report.forbidden("spec.walStorage", "cannot be removed once the cluster has WAL volumes");
    }
    let size = |s: Option<&StorageConfiguration>| s.and_then(StorageConfiguration::requested).and_then(quantity::parse);
    for (path, before, after) in [
        ("spec.storage.size", old.storage.as_ref(), new.storage.as_ref()),
        (
            "spec.walStorage.size",
            old.wal_storage.as_ref(),
            new.wal_storage.as_ref(),
        ),
    ] {
        if let (Some(before), Some(after)) = (size(before), size(after))
            && after < before
        {
            report.forbidden(
                path,
                "volumes cannot shrink: the new size is smaller than the current one",
            );
        }
    }
    if let (Some(before), Some(after)) = (declared_major(old), declared_major(new))
        && after < before
    {
        let path = if new.image_catalog_ref.is_some() {
            "spec.imageCatalogRef.major"
        } else {
            "spec.imageName"
        };
        report.forbidden(
            path,
            format!("cannot go back from PostgreSQL {before} to {after}: majors only move forward"),
        );
    }
    report.finish()
}

/// The PostgreSQL major in an image reference's tag: `…/postgresql:18.1-minimal@sha256:…` → 18.
pub fn major_of_image(image: &str) -> Result<u32, String> {
    let without_digest = image.split('@').next().unwrap_or_default();
    let last_component = without_digest.rsplit('/').next().unwrap_or_default();
    let Some((_, tag)) = last_component.split_once(':') else {
        return Err(format!(
            "{image:?} has no tag, so its PostgreSQL major is unknown: tag it like `18.1` or use imageCatalogRef"
        ));
    };
    if tag == "latest" {
        return Err("the `latest` tag hides which PostgreSQL major runs: use a version tag like `18.1`".into());
    }
    let digits: String = tag.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .map_err(|_| format!("the tag {tag:?} does not start with a PostgreSQL major"))
}

fn declared_major(spec: &ClusterSpec) -> Option<u32> {
    match (&spec.image_name, &spec.image_catalog_ref) {
        (Some(image), _) => major_of_image(image).ok(),
        (None, Some(reference)) => u32::try_from(reference.major).ok(),
        (None, None) => None,
    }
}

fn supported(major: u32) -> Result<(), String> {
    if SUPPORTED_MAJORS.contains(&major) {
        return Ok(());
    }
    let list = SUPPORTED_MAJORS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(format!("PostgreSQL {major} is not supported: use one of {list}"))
}

fn image(report: &mut Report, spec: &ClusterSpec) {
    match (&spec.image_name, &spec.image_catalog_ref) {
        (Some(_), Some(_)) => report.forbidden(
            "spec.imageCatalogRef",
            "imageName and imageCatalogRef are mutually exclusive",
        ),
        (Some(image), None) => {
            if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
                report.invalid("spec.imageName", "must be a non-empty image reference without blanks");
            } else if let Err(e) = major_of_image(image).and_then(supported) {
                report.invalid("spec.imageName", e);
            }
        }
        (None, Some(reference)) => {
            report.one_of(
                "spec.imageCatalogRef.apiGroup",
                Some(&reference.api_group),
                &[crate::GROUP],
            );
            report.one_of(
                "spec.imageCatalogRef.kind",
                Some(&reference.kind),
                &["ImageCatalog", "ClusterImageCatalog"],
            );
            if let Err(e) = names::dns_1123_subdomain(&reference.name) {
                report.invalid("spec.imageCatalogRef.name", e);
            }
            if let Err(e) = u32::try_from(reference.major)
                .map_err(|_| String::new())
                .and_then(supported)
            {
                report.invalid("spec.imageCatalogRef.major", format!("{}: {e}", reference.major));
            }
        }
        // Defaulting fills imageName; an undefaulted object reaches here only from a test.
        (None, None) => report.required("spec.imageName", "set imageName or imageCatalogRef"),
    }
    report.one_of(
        "spec.imagePullPolicy",
        spec.image_pull_policy.as_deref(),
        &["Always", "IfNotPresent", "Never"],
    );
}

fn topology(report: &mut Report, spec: &ClusterSpec) {
    report.at_least("spec.instances", spec.instances, 1);
    report.at_least("spec.minSyncReplicas", spec.min_sync_replicas, 0);
    report.at_least("spec.maxSyncReplicas", spec.max_sync_replicas, 0);
    let (min, max) = (spec.min_sync_replicas.unwrap_or(0), spec.max_sync_replicas.unwrap_or(0));
    if min > max {
        report.invalid(
            "spec.minSyncReplicas",
            format!("{min} is greater than maxSyncReplicas ({max})"),
        );
    }
    if max > 0 && max >= spec.instances() {
        report.invalid(
            "spec.maxSyncReplicas",
            format!("{max} must be less than the number of instances ({})", spec.instances()),
        );
    }
    let affinity = spec.affinity.as_ref();
    report.one_of(
        "spec.affinity.podAntiAffinityType",
        affinity.and_then(|a| a.pod_anti_affinity_type.as_deref()),
        &["preferred", "required"],
    );
    report.one_of(
        "spec.primaryUpdateStrategy",
        spec.primary_update_strategy.as_deref(),
        &["unsupervised", "supervised"],
    );
    report.one_of(
        "spec.primaryUpdateMethod",
        spec.primary_update_method.as_deref(),
        &["restart", "switchover"],
    );
    if spec.instances() == 1 && spec.primary_update_method.as_deref() == Some("switchover") {
        report.invalid(
            "spec.primaryUpdateMethod",
            "switchover needs a replica to switch to: use `restart` with one instance",
        );
    }
    if spec.instances() == 1 && spec.primary_update_strategy.as_deref() == Some("supervised") {
        report.invalid(
            "spec.primaryUpdateStrategy",
            "supervised updates wait for a switchover, which needs more than one instance",
        );
    }
    report.one_of(
        "spec.logLevel",
        spec.log_level.as_deref(),
        &["error", "warning", "info", "debug", "trace"],
    );
}

fn postgresql(report: &mut Report, spec: &ClusterSpec) {
    let Some(pg) = &spec.postgresql else { return };
    for (name, value) in pg.parameters.iter().flatten() {
        if let Err(e) = parameters::check(name, value) {
            report.invalid(format!("spec.postgresql.parameters[{name}]"), e);
        }
    }
    for (i, line) in pg.pg_hba.iter().flatten().enumerate() {
        if let Err(e) = hba::check_hba(line, Flavor::Postgres) {
            report.invalid(format!("spec.postgresql.pg_hba[{i}]"), e);
        }
    }
    for (i, line) in pg.pg_ident.iter().flatten().enumerate() {
        if let Err(e) = hba::check_ident(line) {
            report.invalid(format!("spec.postgresql.pg_ident[{i}]"), e);
        }
    }
    for (i, library) in pg.shared_preload_libraries.iter().flatten().enumerate() {
        if let Err(e) = parameters::check_library(library) {
            report.invalid(format!("spec.postgresql.shared_preload_libraries[{i}]"), e);
        }
    }
    if let Some(sync) = &pg.synchronous {
        report.one_of(
            "spec.postgresql.synchronous.method",
            Some(&sync.method),
            &["any", "first"],
        );
        report.at_least("spec.postgresql.synchronous.number", Some(sync.number), 1);
        report.one_of(
            "spec.postgresql.synchronous.dataDurability",
            sync.data_durability.as_deref(),
            &["required", "preferred"],
        );
        if spec.min_sync_replicas.is_some() || spec.max_sync_replicas.is_some() {
            report.forbidden(
                "spec.postgresql.synchronous",
                "cannot be combined with minSyncReplicas/maxSyncReplicas",
            );
        }
    }
    report.at_least("spec.postgresql.promotionTimeout", pg.promotion_timeout, 0);
}

fn bootstrap(report: &mut Report, spec: &ClusterSpec) {
    let Some(bootstrap) = &spec.bootstrap else { return };
    let methods = [
        bootstrap.initdb.is_some(),
        bootstrap.recovery.is_some(),
        bootstrap.pg_basebackup.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        report.forbidden(
            "spec.bootstrap",
            "choose exactly one of initdb, recovery and pg_basebackup",
        );
    }
    let external: Vec<&str> = spec
        .external_clusters
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    let app = |report: &mut Report, base: &str, database: Option<&str>, owner: Option<&str>| {
        if let Some(Err(e)) = database.map(names::pg_identifier) {
            report.invalid(format!("{base}.database"), e);
        }
        if let Some(owner) = owner {
            if let Err(e) = names::pg_identifier(owner) {
                report.invalid(format!("{base}.owner"), e);
            } else if RESERVED_ROLES.contains(&owner) {
                report.forbidden(
                    format!("{base}.owner"),
                    format!("{owner:?} is a role the operator reserves"),
                );
            }
        }
        if database.is_some() && owner.is_none() {
            report.required(format!("{base}.owner"), "an application database needs an owner");
        }
    };
    if let Some(initdb) = &bootstrap.initdb {
        app(
            report,
            "spec.bootstrap.initdb",
            initdb.database.as_deref(),
            initdb.owner.as_deref(),
        );
        if let Some(size) = initdb.wal_segment_size
            && !((1..=1024).contains(&size) && size.count_ones() == 1)
        {
            report.invalid(
                "spec.bootstrap.initdb.walSegmentSize",
                "must be a power of 2 between 1 and 1024 (MB)",
            );
        }
        report.one_of(
            "spec.bootstrap.initdb.localeProvider",
            initdb.locale_provider.as_deref(),
            &["libc", "icu", "builtin"],
        );
    }
    if let Some(recovery) = &bootstrap.recovery {
        app(
            report,
            "spec.bootstrap.recovery",
            recovery.database.as_deref(),
            recovery.owner.as_deref(),
        );
        match (&recovery.backup, &recovery.source) {
            (Some(_), Some(_)) => report.forbidden(
                "spec.bootstrap.recovery.source",
                "recover from a backup or from a source, not both",
            ),
            (None, None) => report.required(
                "spec.bootstrap.recovery",
                "name a backup or an external cluster as source",
            ),
            (None, Some(source)) if !external.contains(&source.as_str()) => {
                report.invalid(
                    "spec.bootstrap.recovery.source",
                    format!("{source:?} is not in spec.externalClusters"),
                );
            }
            (None, Some(source)) => {
                let has_store = spec
                    .external_clusters
                    .iter()
                    .flatten()
                    .any(|e| e.name == *source && e.barman_object_store.is_some());
                if !has_store {
                    report.invalid(
                        "spec.bootstrap.recovery.source",
                        format!("external cluster {source:?} has no barmanObjectStore to recover from"),
                    );
                }
            }
            _ => {}
        }
        if let Some(target) = &recovery.recovery_target {
            recovery_target(report, target);
        }
    }
    if let Some(basebackup) = &bootstrap.pg_basebackup {
        app(
            report,
            "spec.bootstrap.pg_basebackup",
            basebackup.database.as_deref(),
            basebackup.owner.as_deref(),
        );
        if !external.contains(&basebackup.source.as_str()) {
            report.invalid(
                "spec.bootstrap.pg_basebackup.source",
                format!("{:?} is not in spec.externalClusters", basebackup.source),
            );
        }
    }
}

fn storage(report: &mut Report, path: &str, storage: Option<&StorageConfiguration>, required: bool) {
    let Some(storage) = storage else {
        if required {
            report.required(format!("{path}.size"), "set a size or a storage request in pvcTemplate");
        }
        return;
    };
    if let Some(size) = &storage.size
        && !quantity::parse(size).is_some_and(|v| v > 0.0)
    {
        report.invalid(
            format!("{path}.size"),
            format!("{size:?} is not a positive quantity such as 10Gi"),
        );
    } else if storage.requested().is_none() {
        report.required(format!("{path}.size"), "set a size or a storage request in pvcTemplate");
    }
}

fn lifecycle(report: &mut Report, spec: &ClusterSpec) {
    report.at_least("spec.startDelay", spec.start_delay, 1);
    report.at_least("spec.stopDelay", spec.stop_delay, 1);
    report.at_least("spec.smartShutdownTimeout", spec.smart_shutdown_timeout, 0);
    report.at_least("spec.switchoverDelay", spec.switchover_delay, 1);
    report.at_least("spec.failoverDelay", spec.failover_delay, 0);
    report.at_least("spec.livenessProbeTimeout", spec.liveness_probe_timeout, 1);
    if spec.stop_delay() >= 1 && spec.smart_shutdown_timeout() >= spec.stop_delay() {
        report.invalid(
            "spec.smartShutdownTimeout",
            format!(
                "{} must be less than stopDelay ({}), or the fast shutdown never gets its turn",
                spec.smart_shutdown_timeout(),
                spec.stop_delay()
            ),
        );
    }
    if let Some(backup) = &spec.backup {
        if let Some(policy) = &backup.retention_policy {
            let (number, unit) = policy.split_at(policy.len().saturating_sub(1));
            let ok = matches!(unit, "d" | "w" | "m")
                && number.starts_with(|c: char| ('1'..='9').contains(&c))
                && number.chars().all(|c| c.is_ascii_digit());
            if !ok {
                report.invalid(
                    "spec.backup.retentionPolicy",
                    format!("{policy:?} must read like 30d, 4w or 3m"),
                );
            }
        }
        report.one_of(
            "spec.backup.target",
            backup.target.as_deref(),
            &["primary", "prefer-standby"],
        );
        if let Some(store) = &backup.barman_object_store {
            super::barman::object_store(report, "spec.backup.barmanObjectStore", store);
        }
    }
    for (i, external) in spec.external_clusters.iter().flatten().enumerate() {
        if let Some(store) = &external.barman_object_store {
            super::barman::object_store(report, &format!("spec.externalClusters[{i}].barmanObjectStore"), store);
        }
    }
    for (i, selector) in spec
        .monitoring
        .iter()
        .flat_map(|m| m.custom_queries_config_map.iter().flatten())
        .enumerate()
    {
        if selector.name.is_empty() || selector.key.is_empty() {
            report.required(
                format!("spec.monitoring.customQueriesConfigMap[{i}]"),
                "name and key are both required",
            );
        }
    }
    for (i, selector) in spec
        .monitoring
        .iter()
        .flat_map(|m| m.custom_queries_secret.iter().flatten())
        .enumerate()
    {
        if selector.name.is_empty() || selector.key.is_empty() {
            report.required(
                format!("spec.monitoring.customQueriesSecret[{i}]"),
                "name and key are both required",
            );
        }
    }
    if let Some(limits) = &spec.ephemeral_volumes_size_limit {
        for (field, value) in [("shm", &limits.shm), ("temporaryData", &limits.temporary_data)] {
            if let Some(value) = value
                && quantity::parse(value).is_none()
            {
                report.invalid(
                    format!("spec.ephemeralVolumesSizeLimit.{field}"),
                    format!("{value:?} is not a quantity"),
                );
            }
        }
    }
}

fn security(report: &mut Report, spec: &ClusterSpec) {
    // Root inside the pod is what every other control here exists to prevent.
    for (path, id) in [
        ("spec.postgresUID", spec.postgres_uid()),
        ("spec.postgresGID", spec.postgres_gid()),
    ] {
        if id <= 0 {
            report.forbidden(
                path,
                format!("{id}: PostgreSQL never runs as root; use an id above 0 (default 26)"),
            );
        }
    }
    if let Some(Err(e)) = spec.service_account_name.as_deref().map(names::dns_1123_subdomain) {
        report.invalid("spec.serviceAccountName", e);
    }
    if let Some(certificates) = &spec.certificates {
        if certificates.server_tls_secret.is_some() && certificates.server_ca_secret.is_none() {
            report.required(
                "spec.certificates.serverCASecret",
                "a user-provided serverTLSSecret needs the CA that signed it",
            );
        }
        if certificates.replication_tls_secret.is_some() && certificates.client_ca_secret.is_none() {
            report.required(
                "spec.certificates.clientCASecret",
                "a user-provided replicationTLSSecret needs the CA that signed it",
            );
        }
        for (i, name) in certificates.server_alt_dns_names.iter().flatten().enumerate() {
            if has_control(name) || name.contains([' ', ',']) {
                report.invalid(
                    format!("spec.certificates.serverAltDNSNames[{i}]"),
                    format!("{name:?} is not a DNS name"),
                );
            }
        }
    }
    report.unique(
        "spec.externalClusters",
        spec.external_clusters.iter().flatten().map(|e| e.name.as_str()),
    );
    for (i, external) in spec.external_clusters.iter().flatten().enumerate() {
        if let Err(e) = names::dns_1123_label(&external.name, 63) {
            report.invalid(format!("spec.externalClusters[{i}].name"), e);
        }
        for (key, value) in external.connection_parameters.iter().flatten() {
            if has_control(value) || has_control(key) {
                report.invalid(
                    format!("spec.externalClusters[{i}].connectionParameters[{key}]"),
                    "holds a control character",
                );
            }
        }
    }
}

fn roles(report: &mut Report, spec: &ClusterSpec) {
    let roles = spec.managed.iter().flat_map(|m| m.roles.iter().flatten());
    report.unique("spec.managed.roles", roles.clone().map(|r| r.name.as_str()));
    for (i, role) in roles.enumerate() {
        let path = format!("spec.managed.roles[{i}]");
        if let Err(e) = names::pg_identifier(&role.name) {
            report.invalid(format!("{path}.name"), e);
        } else if RESERVED_ROLES.contains(&role.name.as_str()) || role.name.starts_with("pg_") {
            report.forbidden(
                format!("{path}.name"),
                format!("{:?} is reserved for PostgreSQL or the operator", role.name),
            );
        }
        report.one_of(
            &format!("{path}.ensure"),
            role.ensure.as_deref(),
            &["present", "absent"],
        );
        report.at_least(&format!("{path}.connectionLimit"), role.connection_limit, -1);
        for (j, member_of) in role.in_roles.iter().flatten().enumerate() {
            if let Err(e) = names::pg_identifier(member_of) {
                report.invalid(format!("{path}.inRoles[{j}]"), e);
            }
        }
    }
}

/// A point-in-time recovery target: at most one stop condition, each in a form PostgreSQL
/// reads (it gets them as `recovery_target_*` settings).
fn recovery_target(report: &mut Report, target: &crate::cluster::RecoveryTarget) {
    let base = "spec.bootstrap.recovery.recoveryTarget";
    let set: Vec<&str> = [
        ("targetTime", target.target_time.is_some()),
        ("targetLSN", target.target_lsn.is_some()),
        ("targetXID", target.target_xid.is_some()),
        ("targetName", target.target_name.is_some()),
        ("targetImmediate", target.target_immediate == Some(true)),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    if set.len() > 1 {
        report.forbidden(base, format!("choose one stop condition, not {}", set.join(" and ")));
    }
    let plain = |text: &str| !text.is_empty() && text.len() <= 64 && !text.chars().any(|c| c.is_control() || c == '\'');
    if let Some(lsn) = &target.target_lsn {
        let ok = lsn
            .split_once('/')
            .is_some_and(|(high, low)| u32::from_str_radix(high, 16).is_ok() && u32::from_str_radix(low, 16).is_ok());
        if !ok {
            report.invalid(
                format!("{base}.targetLSN"),
                format!("{lsn:?} is not an LSN like 0/3000060"),
            );
        }
    }
    if let Some(xid) = &target.target_xid
        && (xid.is_empty() || !xid.chars().all(|c| c.is_ascii_digit()))
    {
        report.invalid(format!("{base}.targetXID"), format!("{xid:?} is not a transaction ID"));
    }
    if let Some(time) = &target.target_time {
        let ok = plain(time)
            && time.len() >= 10
            && time.get(..10).is_some_and(|date| {
                date.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
            })
            && time.chars().all(|c| c.is_ascii_alphanumeric() || " :.+-".contains(c));
        if !ok {
            report.invalid(
                format!("{base}.targetTime"),
                format!("{time:?} is not a timestamp like 2026-12-01 15:41:23.9+00 or RFC 3339"),
            );
        }
    }
    if let Some(name) = &target.target_name
        && !plain(name)
    {
        report.invalid(
            format!("{base}.targetName"),
            "a restore point name: 1 to 64 characters, no quote or control character",
        );
    }
    if let Some(tli) = &target.target_tli {
        let ok = matches!(tli.as_str(), "latest" | "current") || tli.parse::<u32>().is_ok_and(|n| n > 0);
        if !ok {
            report.invalid(
                format!("{base}.targetTLI"),
                format!("{tli:?} is not latest, current or a timeline number"),
            );
        }
    }
    if let Some(id) = &target.backup_id {
        let ok = id.len() == 15
            && id
                .bytes()
                .enumerate()
                .all(|(i, b)| if i == 8 { b == b'T' } else { b.is_ascii_digit() });
        if !ok {
            report.invalid(
                format!("{base}.backupID"),
                format!("{id:?} is not a backup ID like 20261201T154123"),
            );
        }
    }
}
