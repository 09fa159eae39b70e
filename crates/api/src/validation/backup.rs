//! `Backup` and `ScheduledBackup` validation.

use super::{FieldError, Report, names};
use crate::backup::{Backup, ScheduledBackup};
use crate::schedule;

const METHODS: &[&str] = &["barmanObjectStore", "volumeSnapshot", "plugin"];
const TARGETS: &[&str] = &["primary", "prefer-standby"];

fn cluster_ref(report: &mut Report, name: &str) {
    if let Err(e) = names::dns_1035_label(name, 50) {
        report.required("spec.cluster.name", format!("name the Cluster to back up: {e}"));
    }
}

/// Every problem of a Backup.
pub fn backup(backup: &Backup) -> Vec<FieldError> {
    let mut report = Report::default();
    cluster_ref(&mut report, &backup.spec.cluster.name);
    report.one_of("spec.method", backup.spec.method.as_deref(), METHODS);
    report.one_of("spec.target", backup.spec.target.as_deref(), TARGETS);
    report.finish()
}

/// Every problem of a ScheduledBackup.
pub fn scheduled_backup(scheduled: &ScheduledBackup) -> Vec<FieldError> {
    let mut report = Report::default();
    let spec = &scheduled.spec;
    cluster_ref(&mut report, &spec.cluster.name);
    if let Err(e) = schedule::parse(&spec.schedule) {
        report.invalid("spec.schedule", format!("{:?}: {e}", spec.schedule));
    }
    report.one_of("spec.method", spec.method.as_deref(), METHODS);
    report.one_of("spec.target", spec.target.as_deref(), TARGETS);
    report.one_of(
        "spec.backupOwnerReference",
        spec.backup_owner_reference.as_deref(),
        &["none", "self", "cluster"],
    );
    report.finish()
}

/// Every problem of an update.
pub fn scheduled_backup_update(old: &ScheduledBackup, new: &ScheduledBackup) -> Vec<FieldError> {
    let mut report = Report(scheduled_backup(new));
    if old.spec.cluster != new.spec.cluster {
        report.immutable("spec.cluster");
    }
    report.finish()
}
