//! What reaches the operator and the instance manager through the Kubernetes API and the
//! instance status API: admission reviews of our kinds, the fencing annotation, backup
//! schedules, and `/pg/status` answers.

use std::collections::BTreeMap;

use cnpg_api::fencing::{FENCED_INSTANCES, Fenced};
use cnpg_api::schedule::{self, Schedule};
use cnpg_api::{Backup, Cluster, Pooler, ScheduledBackup, defaults, validation};
use cnpg_instance_api::{BackupStatus, ControlData, InstanceStatus};

/// The annotation's value: what is read back writes out and reads back the same.
pub fn fencing_annotation(data: &[u8]) {
    let value = String::from_utf8_lossy(data).into_owned();
    let annotations = BTreeMap::from([(FENCED_INSTANCES.to_owned(), value)]);
    if let Ok(fenced) = Fenced::from_annotations(Some(&annotations)) {
        let again = BTreeMap::from([(FENCED_INSTANCES.to_owned(), fenced.to_annotation())]);
        assert_eq!(Fenced::from_annotations(Some(&again)).ok(), Some(fenced));
    }
}

/// A ScheduledBackup's schedule: a parsed one finds its next run (croner searches a bounded
/// range; the fuzzer's timeout catches a search that does not end).
pub fn cron_schedule(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(Schedule::Cron(cron)) = schedule::parse(&text) {
        let start = jiff::Timestamp::from_second(1_796_000_000)
            .expect("a valid instant")
            .to_zoned(jiff::tz::TimeZone::UTC);
        if let Ok(next) = cron.find_next_occurrence(&start, false) {
            assert!(next > start, "the next run is not after the start");
        }
    }
}

/// A `/pg/status`, `/pg/controldata` or `/pg/mode/backup` answer.
pub fn instance_status(data: &[u8]) {
    let _ = serde_json::from_slice::<InstanceStatus>(data);
    let _ = serde_json::from_slice::<ControlData>(data);
    let _ = serde_json::from_slice::<BackupStatus>(data);
}

/// An AdmissionReview of one of our kinds, run through what the webhooks do: parse the
/// object (and the old one on update), default it, validate it. Defaulting is idempotent.
pub fn admission_review(data: &[u8]) {
    let Ok(review) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Some(request) = review.get("request") else { return };
    let kind = request
        .pointer("/kind/kind")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let object = request.get("object").cloned().unwrap_or_default();
    let old = request.get("oldObject").filter(|o| !o.is_null()).cloned();
    let operator = defaults::OperatorDefaults {
        image_name: "postgresql:17".into(),
        monitoring_queries_config_map: defaults::DEFAULT_MONITORING_CONFIG_MAP.into(),
    };
    match kind {
        "Cluster" => {
            let Ok(mut cluster) = serde_json::from_value::<Cluster>(object) else {
                return;
            };
            defaults::cluster(&mut cluster, &operator);
            let once = serde_json::to_value(&cluster).expect("serializes");
            defaults::cluster(&mut cluster, &operator);
            assert_eq!(
                once,
                serde_json::to_value(&cluster).expect("serializes"),
                "defaulting twice differs"
            );
            let _ = validation::cluster(&cluster);
            if let Some(Ok(old)) = old.map(serde_json::from_value::<Cluster>) {
                let _ = validation::cluster_update(&old, &cluster);
            }
        }
        "Pooler" => {
            let Ok(mut pooler) = serde_json::from_value::<Pooler>(object) else {
                return;
            };
            defaults::pooler(&mut pooler);
            let _ = validation::pooler(&pooler);
            if let Some(Ok(old)) = old.map(serde_json::from_value::<Pooler>) {
                let _ = validation::pooler_update(&old, &pooler);
            }
        }
        "Backup" => {
            let Ok(mut backup) = serde_json::from_value::<Backup>(object) else {
                return;
            };
            defaults::backup(&mut backup);
            let _ = validation::backup(&backup);
        }
        "ScheduledBackup" => {
            let Ok(mut scheduled) = serde_json::from_value::<ScheduledBackup>(object) else {
                return;
            };
            defaults::scheduled_backup(&mut scheduled);
            let _ = validation::scheduled_backup(&scheduled);
            if let Some(Ok(old)) = old.map(serde_json::from_value::<ScheduledBackup>) {
                let _ = validation::scheduled_backup_update(&old, &scheduled);
            }
        }
        _ => {}
    }
}
