//! ScheduledBackup → Backups, as CloudNativePG schedules them. Pure: the controller reads the
//! ScheduledBackup (and its Cluster's UID), applies the [`Decision`] (creates the Backup,
//! writes the status) and looks again after `requeue_after`.
//!
//! - The first look records the check time and the next run; with `immediate` it also takes
//!   a Backup at once.
//! - Later looks compute the run after the last check: once it is due, a Backup named after
//!   that scheduled time (`<name>-<YYYYMMDDhhmmss>`, so a retried look never makes two), and
//!   the next run after now; runs missed while the operator was down are not made up one by
//!   one (one Backup for the latest due run).
//! - `suspend` does nothing until it is lifted; a schedule that does not parse is reported in
//!   `status.error` and never fires.

use std::collections::BTreeMap;
use std::time::Duration;

use cnpg_api::backup::{Backup, BackupSpec, ScheduledBackup, ScheduledBackupStatus};
use cnpg_api::schedule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// What to do for one ScheduledBackup now.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The Backup to create.
    pub backup: Option<Backup>,
    /// The status to write (unchanged when nothing is to be written).
    pub status: ScheduledBackupStatus,
    /// When to look again (None: only when the object changes).
    pub requeue_after: Option<Duration>,
}

/// CloudNativePG's compact ISO 8601 (`20061102150405`), for Backup names.
fn compact(t: jiff::Timestamp) -> String {
    t.strftime("%Y%m%d%H%M%S").to_string()
}

fn until(now: jiff::Timestamp, next: jiff::Timestamp) -> Duration {
    Duration::from_secs(u64::try_from(next.as_second() - now.as_second()).unwrap_or(0).max(1))
}

/// The decision for `scheduled` at `now`; `cluster_uid` is needed only for
/// `backupOwnerReference: cluster`.
pub fn decide(scheduled: &ScheduledBackup, cluster_uid: Option<&str>, now: jiff::Timestamp) -> Decision {
    let mut status = scheduled.status.clone().unwrap_or_default();
    let unchanged = |status| Decision {
        backup: None,
        status,
        requeue_after: None,
    };
    if scheduled.spec.suspend == Some(true) {
        return unchanged(status);
    }
    let parsed = match schedule::parse(&scheduled.spec.schedule) {
        Ok(parsed) => parsed,
        Err(e) => {
            status.error = Some(format!("spec.schedule: {e}"));
            return unchanged(status);
        }
    };
    status.error = None;
    let last_check = status
        .last_check_time
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let (due, immediate) = match last_check {
        None => (scheduled.spec.immediate.unwrap_or(false).then_some(now), true),
        Some(last) => match schedule::next_after(&parsed, last) {
            Some(next) if next <= now => (Some(next), false),
            Some(next) => {
                status.next_schedule_time = Some(next.to_string());
                return Decision {
                    backup: None,
                    status,
                    requeue_after: Some(until(now, next)),
                };
            }
            None => {
                status.next_schedule_time = None;
                return unchanged(status);
            }
        },
    };
    let backup = match due.map(|at| backup(scheduled, cluster_uid, at, immediate)).transpose() {
        Ok(backup) => backup,
        Err(e) => {
            status.error = Some(e);
            return unchanged(status);
        }
    };
    if let Some(at) = due {
        status.last_schedule_time = Some(at.to_string());
    }
    status.last_check_time = Some(now.to_string());
    let next = schedule::next_after(&parsed, now);
    status.next_schedule_time = next.map(|n| n.to_string());
    Decision {
        backup,
        status,
        requeue_after: next.map(|n| until(now, n)),
    }
}

/// The Backup for the run scheduled `at`.
fn backup(
    scheduled: &ScheduledBackup,
    cluster_uid: Option<&str>,
    at: jiff::Timestamp,
    immediate: bool,
) -> Result<Backup, String> {
    let name = scheduled.metadata.name.clone().unwrap_or_default();
    let cluster = scheduled.spec.cluster.name.clone();
    let owner = match scheduled.spec.backup_owner_reference.as_deref().unwrap_or("none") {
        "none" => None,
        "self" => Some(OwnerReference {
            api_version: "postgresql.cnpg.io/v1".into(),
            kind: "ScheduledBackup".into(),
            name: name.clone(),
            uid: scheduled.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }),
        "cluster" => Some(OwnerReference {
            api_version: "postgresql.cnpg.io/v1".into(),
            kind: "Cluster".into(),
            name: cluster.clone(),
            uid: cluster_uid
                .ok_or_else(|| format!("Cluster {cluster:?} not found: its Backups cannot be owned by it"))?
                .to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }),
        other => {
            return Err(format!(
                "spec.backupOwnerReference {other:?} is not none, self or cluster"
            ));
        }
    };
    let labels = BTreeMap::from([
        ("cnpg.io/cluster".to_owned(), cluster.clone()),
        ("cnpg.io/immediateBackup".to_owned(), immediate.to_string()),
        ("cnpg.io/scheduled-backup".to_owned(), name.clone()),
    ]);
    Ok(Backup {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{}", compact(at))),
            namespace: scheduled.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: BackupSpec {
            cluster: scheduled.spec.cluster.clone(),
            target: scheduled.spec.target.clone(),
            method: scheduled.spec.method.clone(),
            online: scheduled.spec.online,
            ..BackupSpec::default()
        },
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnpg_api::backup::ScheduledBackupSpec;
    use k8s_openapi::api::core::v1::LocalObjectReference;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn nightly(schedule: &str) -> ScheduledBackup {
        let mut scheduled = ScheduledBackup::new(
            "nightly",
            ScheduledBackupSpec {
                schedule: schedule.into(),
                cluster: LocalObjectReference { name: "pg".into() },
                ..ScheduledBackupSpec::default()
            },
        );
        scheduled.metadata.namespace = Some("db".into());
        scheduled.metadata.uid = Some("uid-sb".into());
        scheduled
    }

    /// Applies decisions at the given times, as the controller would: the Backups created.
    fn run(scheduled: &mut ScheduledBackup, times: &[&str]) -> Vec<String> {
        let mut created = Vec::new();
        for t in times {
            let decision = decide(scheduled, Some("uid-cluster"), at(t));
            if let Some(backup) = decision.backup {
                created.push(backup.metadata.name.unwrap());
            }
            scheduled.status = Some(decision.status);
        }
        created
    }

    #[test]
    fn backups_are_named_after_their_scheduled_time_once_each() {
        let mut scheduled = nightly("0 0 0 * * *");
        // First look: nothing due yet, the next run recorded.
        let first = decide(&scheduled, None, at("2026-12-01T10:00:00Z"));
        assert_eq!(first.backup, None);
        assert_eq!(first.status.next_schedule_time.as_deref(), Some("2026-12-02T00:00:00Z"));
        assert_eq!(first.requeue_after, Some(Duration::from_secs(14 * 3600)));
        scheduled.status = Some(first.status);
        // Early, on time (late by seconds), again right after, then two days of downtime:
        // one Backup per due run, named after the run, none twice.
        let created = run(
            &mut scheduled,
            &[
                "2026-12-01T23:59:59Z",
                "2026-12-02T00:00:03Z",
                "2026-12-02T00:00:04Z",
                "2026-12-04T09:00:00Z",
            ],
        );
        assert_eq!(created, ["nightly-20261202000000", "nightly-20261203000000"]);
        let status = scheduled.status.clone().unwrap();
        assert_eq!(status.last_schedule_time.as_deref(), Some("2026-12-03T00:00:00Z"));
        assert_eq!(status.next_schedule_time.as_deref(), Some("2026-12-05T00:00:00Z"));
    }

    #[test]
    fn immediate_suspend_owner_and_labels() {
        let mut scheduled = nightly("@every 1h");
        scheduled.spec.immediate = Some(true);
        scheduled.spec.backup_owner_reference = Some("self".into());
        scheduled.spec.target = Some("primary".into());
        let decision = decide(&scheduled, None, at("2026-12-01T10:17:42Z"));
        let backup = decision.backup.unwrap();
        assert_eq!(backup.metadata.name.as_deref(), Some("nightly-20261201101742"));
        let labels = backup.metadata.labels.unwrap();
        assert_eq!(labels["cnpg.io/immediateBackup"], "true");
        assert_eq!(labels["cnpg.io/scheduled-backup"], "nightly");
        assert_eq!(labels["cnpg.io/cluster"], "pg");
        let owner = &backup.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("ScheduledBackup", "uid-sb"));
        assert_eq!(backup.spec.target.as_deref(), Some("primary"));
        assert_eq!(
            decision.status.next_schedule_time.as_deref(),
            Some("2026-12-01T11:17:42Z")
        );
        scheduled.status = Some(decision.status);
        // The next one is a scheduled one.
        let later = run(&mut scheduled, &["2026-12-01T11:17:43Z"]);
        assert_eq!(later, ["nightly-20261201111742"]);

        // Suspended: nothing, whatever is due.
        scheduled.spec.suspend = Some(true);
        assert_eq!(run(&mut scheduled, &["2026-12-02T11:00:00Z"]), Vec::<String>::new());
        scheduled.spec.suspend = None;
        assert_eq!(run(&mut scheduled, &["2026-12-02T11:00:00Z"]).len(), 1);

        // Owned by the Cluster: its UID is needed.
        scheduled.spec.backup_owner_reference = Some("cluster".into());
        let orphan = decide(&scheduled, None, at("2026-12-03T11:00:00Z"));
        assert_eq!(orphan.backup, None);
        assert!(orphan.status.error.unwrap().contains("not found"));
        let owned = decide(&scheduled, Some("uid-cluster"), at("2026-12-03T11:00:00Z"));
        let owner = &owned.backup.unwrap().metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Cluster", "uid-cluster"));
    }

    #[test]
    fn a_schedule_that_does_not_parse_is_reported_and_never_fires() {
        let scheduled = nightly("0 0 0 * * 7");
        let decision = decide(&scheduled, None, at("2026-12-01T10:00:00Z"));
        assert_eq!(decision.backup, None);
        assert_eq!(decision.requeue_after, None);
        assert!(decision.status.error.unwrap().contains("0 (Sunday) to 6"));
    }
}
