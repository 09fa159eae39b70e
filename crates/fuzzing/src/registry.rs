//! What the publisher reads back from a registry (indexes, manifests, the previous image's
//! lock) and the docker `config.json` its credentials come from.

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
