//! Defaulting, as pure functions: what the mutating webhook writes into an object before it is
//! stored, and what the reconciler assumes when it reads one that skipped the webhook. Every
//! function is idempotent and fills only fields the user left out.

use crate::backup::{Backup, ScheduledBackup};
use crate::cluster::{Bootstrap, BootstrapInitDb, Cluster, ConfigMapKeySelector, MonitoringConfiguration};
use crate::pooler::Pooler;

/// The operator configuration defaulting depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorDefaults {
    /// `POSTGRES_IMAGE_NAME`: the image of a Cluster that names none.
    pub image_name: String,
    /// `MONITORING_QUERIES_CONFIGMAP`: the default queries every Cluster reads, unless it opts out.
    pub monitoring_queries_config_map: String,
}

/// The name of the ConfigMap of default monitoring queries, and its key.
pub const DEFAULT_MONITORING_CONFIG_MAP: &str = "cnpg-default-monitoring";
pub const DEFAULT_MONITORING_KEY: &str = "queries";
/// The application database and its owner when bootstrap names none.
pub const DEFAULT_APP: &str = "app";

fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

/// Fills a Cluster's unset fields with CloudNativePG's defaults.
pub fn cluster(cluster: &mut Cluster, defaults: &OperatorDefaults) {
    let spec = &mut cluster.spec;
    if spec.image_catalog_ref.is_none() {
        set(&mut spec.image_name, defaults.image_name.clone());
    }
    set(&mut spec.instances, 1);
    set(&mut spec.postgres_uid, 26);
    set(&mut spec.postgres_gid, 26);
    set(&mut spec.enable_superuser_access, false);
    set(&mut spec.enable_pdb, true);
    set(&mut spec.start_delay, 3600);
    set(&mut spec.stop_delay, 1800);
    set(&mut spec.smart_shutdown_timeout, 180);
    set(&mut spec.switchover_delay, 3600);
    set(&mut spec.failover_delay, 0);
    set(&mut spec.primary_update_strategy, "unsupervised".into());
    set(&mut spec.primary_update_method, "restart".into());
    set(&mut spec.log_level, "info".into());
    for storage in [spec.storage.as_mut(), spec.wal_storage.as_mut()].into_iter().flatten() {
        set(&mut storage.resize_in_use_volumes, true);
    }
    let bootstrap = spec.bootstrap.get_or_insert_with(Bootstrap::default);
    if bootstrap.recovery.is_none() && bootstrap.pg_basebackup.is_none() {
        let initdb = bootstrap.initdb.get_or_insert_with(BootstrapInitDb::default);
        app(&mut initdb.database, &mut initdb.owner);
    }
    if let Some(recovery) = &mut bootstrap.recovery {
        app(&mut recovery.database, &mut recovery.owner);
    }
    if let Some(basebackup) = &mut bootstrap.pg_basebackup {
        app(&mut basebackup.database, &mut basebackup.owner);
    }
    let monitoring = spec.monitoring.get_or_insert_with(MonitoringConfiguration::default);
    set(&mut monitoring.disable_default_queries, false);
    if monitoring.disable_default_queries == Some(false) {
        let maps = monitoring.custom_queries_config_map.get_or_insert_with(Vec::new);
        if !maps.iter().any(|m| m.name == defaults.monitoring_queries_config_map) {
            maps.push(ConfigMapKeySelector {
                name: defaults.monitoring_queries_config_map.clone(),
                key: DEFAULT_MONITORING_KEY.into(),
            });
        }
    }
}

/// `database` defaults to `app`, `owner` to the database.
fn app(database: &mut Option<String>, owner: &mut Option<String>) {
    let database = database.get_or_insert_with(|| DEFAULT_APP.into());
    set(owner, database.clone());
}

/// Fills a Pooler's unset fields.
pub fn pooler(pooler: &mut Pooler) {
    set(&mut pooler.spec.pooler_type, "rw".into());
    set(&mut pooler.spec.instances, 1);
    set(&mut pooler.spec.pgbouncer.pool_mode, "session".into());
    set(&mut pooler.spec.pgbouncer.paused, false);
}

/// Fills a Backup's unset fields.
pub fn backup(backup: &mut Backup) {
    set(&mut backup.spec.method, "barmanObjectStore".into());
}

/// Fills a ScheduledBackup's unset fields.
pub fn scheduled_backup(scheduled: &mut ScheduledBackup) {
    set(&mut scheduled.spec.method, "barmanObjectStore".into());
    set(&mut scheduled.spec.backup_owner_reference, "none".into());
}
