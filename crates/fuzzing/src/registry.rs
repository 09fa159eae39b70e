//! What the publisher reads back from a registry (indexes, manifests, the previous image's
//! lock), the docker `config.json` its credentials come from, and what an S3 store answers.

use std::path::Path;

use cnpg_imaging::lock::Lock;
use cnpg_imaging::oci::{ImageConfig, Index, Manifest};
use cnpg_imaging::registry::Credentials;

/// A registry response: an index, a manifest, an image config or a lock; what parses must
/// serialize and parse again to the same JSON.
pub fn oci_manifest(data: &[u8]) {
    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
        if let Ok(value) = serde_json::from_slice::<T>(data) {
            let once = serde_json::to_value(&value).expect("a parsed value serializes");
            let again: T = serde_json::from_value(once.clone()).expect("what we wrote parses");
            assert_eq!(
                once,
                serde_json::to_value(&again).expect("serializes"),
                "round trip changed it"
            );
        }
    }
    round_trip::<Index>(data);
    round_trip::<Manifest>(data);
    round_trip::<ImageConfig>(data);
    round_trip::<Lock>(data);
}

/// An S3 `ListObjectsV2` answer: every object listed has a key, and a truncated page says
/// where the next one starts.
pub fn s3_listing(data: &[u8]) {
    if let Ok(page) = cnpg_objectstore::list::parse(data) {
        assert!(
            page.objects.iter().all(|o| !o.key.is_empty()),
            "an object without a key"
        );
        assert!(
            page.next.as_ref().is_none_or(|t| !t.is_empty()),
            "an empty continuation token"
        );
    }
}

/// A `backup.info` from the object store (barman's or ours), as recovery and retention read
/// it: what parses renders and parses back to the same fields; its backup label, times and
/// sizes are read or refused, never a panic; Python string literals round-trip.
pub fn backup_info(data: &[u8]) {
    use cnpg_backup::info::{self, BackupInfo};
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = BackupInfo::parse(&text) {
        let again = BackupInfo::parse(&parsed.render()).expect("a rendered backup.info parses");
        assert_eq!(again, parsed, "render and parse lost or changed a field");
        if let Ok(Some(label)) = parsed.get_string("backup_label") {
            let _ = cnpg_backup::base::parse_label(&label);
        }
        for key in ["begin_time", "end_time"] {
            let _ = parsed.get(key).and_then(info::parse_time);
        }
        for key in ["begin_xlog", "end_xlog"] {
            let _ = parsed.get(key).and_then(cnpg_backup::base::parse_lsn);
        }
    }
    if let Ok(literal) = info::python_unrepr(&text) {
        assert_eq!(
            info::python_unrepr(&info::python_repr(&literal)),
            Ok(literal),
            "a Python literal did not round-trip"
        );
    }
}

/// A docker `config.json` (a `kubernetes.io/dockerconfigjson` Secret): the first line names
/// the registry host. A password found never shows in `Debug`.
pub fn docker_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (host, json) = text.split_once('\n').unwrap_or(("registry.invalid", &text));
    if let Ok(Some(credentials)) =
        Credentials::from_docker_config_bytes(json.as_bytes(), host, Path::new("config.json"))
    {
        assert_eq!(format!("{:?}", credentials.password), "Password([redacted])");
    }
}
