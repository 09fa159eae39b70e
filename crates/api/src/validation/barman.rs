//! `barmanObjectStore`: what the WAL archiver and backups can use, refused otherwise with the
//! field and the reason.

use super::{Kind, Report, has_control};
use crate::barman::{DATA_COMPRESSIONS, ENCRYPTIONS, ObjectStore, SecretKey, WAL_COMPRESSIONS};

/// Checks the `barmanObjectStore` at `path` (free-form JSON in the API).
pub(crate) fn object_store(report: &mut Report, path: &str, value: &serde_json::Value) {
    let store = match ObjectStore::from_value(value) {
        Ok(store) => store,
        Err(e) => {
            report.invalid(path, e);
            return;
        }
    };
    let destination = &store.destination_path;
    if destination.is_empty() {
        report.required(
            format!("{path}.destinationPath"),
            "name where backups go: s3://BUCKET[/PATH]",
        );
    } else if let Some(rest) = destination.strip_prefix("s3://") {
        let (bucket, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || rest.split('/').any(|p| p == "." || p == "..") || has_control(destination) {
            report.invalid(
                format!("{path}.destinationPath"),
                format!("{destination:?} is not s3://BUCKET[/PATH]"),
            );
        }
    } else {
        report.push(
            format!("{path}.destinationPath"),
            Kind::NotSupported,
            format!("{destination:?}: only S3-compatible stores (s3://BUCKET[/PATH]) are supported yet"),
        );
    }
    for (field, set) in [
        ("azureCredentials", store.azure_credentials.is_some()),
        ("googleCredentials", store.google_credentials.is_some()),
    ] {
        if set {
            report.push(
                format!("{path}.{field}"),
                Kind::NotSupported,
                "only S3-compatible stores are supported yet: use s3Credentials",
            );
        }
    }
    if let Some(url) = &store.endpoint_url {
        let host = url.strip_prefix("https://").map(|h| h.trim_end_matches('/'));
        if !host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@']) && !has_control(h)) {
            report.invalid(
                format!("{path}.endpointURL"),
                format!("{url:?} must be https://HOST[:PORT]: credentials and WAL never cross plain HTTP"),
            );
        }
    }
    if let Some(server) = &store.server_name
        && (server.is_empty() || server.contains('/') || server == "." || server == ".." || has_control(server))
    {
        report.invalid(
            format!("{path}.serverName"),
            format!("{server:?} must be a name without `/`"),
        );
    }
    let mut secret = |field: &str, reference: Option<&SecretKey>| {
        if let Some(reference) = reference
            && (reference.name.is_empty() || reference.key.is_empty())
        {
            report.required(format!("{path}.{field}"), "name and key are both required");
        }
    };
    secret("endpointCA", store.endpoint_ca.as_ref());
    let credentials = store.s3_credentials.clone().unwrap_or_default();
    secret("s3Credentials.accessKeyId", credentials.access_key_id.as_ref());
    secret("s3Credentials.secretAccessKey", credentials.secret_access_key.as_ref());
    secret("s3Credentials.region", credentials.region.as_ref());
    secret("s3Credentials.sessionToken", credentials.session_token.as_ref());
    if store.azure_credentials.is_none() && store.google_credentials.is_none() {
        if credentials.inherit_from_iam_role == Some(true) {
            report.push(
                format!("{path}.s3Credentials.inheritFromIAMRole"),
                Kind::NotSupported,
                "is not supported yet: name accessKeyId and secretAccessKey",
            );
        } else if credentials.access_key_id.is_none() || credentials.secret_access_key.is_none() {
            report.required(
                format!("{path}.s3Credentials"),
                "accessKeyId and secretAccessKey are both required",
            );
        }
    }
    // Compressions barman knows but we do not write yet: refused here, or every WAL segment
    // would fail to archive (and pile up) and every backup would fail.
    let written_yet = |report: &mut Report, field: String, value: Option<&str>, known: &[&str]| {
        if let Some(value) = value
            && value != "gzip"
            && known.contains(&value)
        {
            report.push(
                field,
                Kind::NotSupported,
                "is not supported yet: use gzip or leave it unset",
            );
        }
    };
    if let Some(wal) = &store.wal {
        report.one_of(
            &format!("{path}.wal.compression"),
            wal.compression.as_deref(),
            WAL_COMPRESSIONS,
        );
        written_yet(
            report,
            format!("{path}.wal.compression"),
            wal.compression.as_deref(),
            WAL_COMPRESSIONS,
        );
        report.one_of(
            &format!("{path}.wal.encryption"),
            wal.encryption.as_deref(),
            ENCRYPTIONS,
        );
        report.at_least(&format!("{path}.wal.maxParallel"), wal.max_parallel, 1);
    }
    if let Some(data) = &store.data {
        report.one_of(
            &format!("{path}.data.compression"),
            data.compression.as_deref(),
            DATA_COMPRESSIONS,
        );
        written_yet(
            report,
            format!("{path}.data.compression"),
            data.compression.as_deref(),
            DATA_COMPRESSIONS,
        );
        report.one_of(
            &format!("{path}.data.encryption"),
            data.encryption.as_deref(),
            ENCRYPTIONS,
        );
        report.at_least(&format!("{path}.data.jobs"), data.jobs, 1);
    }
}
