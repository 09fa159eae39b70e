//! Software bills of materials: an SPDX 2.3 JSON document per image and platform listing every
//! package (name, version, SHA-256 of its .deb, purl, source package) and every binary of
//! ours, and the OCI artifact that carries it, with the lock, to the image it describes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::image::PlatformImage;
use crate::lock::Lock;
use crate::oci::{
    ANNOTATION_PREFIX, Blob, Descriptor, MEDIA_EMPTY, MEDIA_LOCK, MEDIA_MANIFEST, MEDIA_SPDX, Manifest, Platform,
};

/// The SBOM artifact of one platform image, ready to store or push.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub spdx: Blob,
    pub lock: Blob,
    pub empty: Blob,
    pub manifest: Blob,
    subject: Option<String>,
}

/// Building an SBOM failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to serialize the SBOM of {0}")]
pub struct Error(String, #[source] serde_json::Error);

impl Artifact {
    /// The digest of the image manifest this SBOM describes.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
}

/// A valid SPDX identifier for `name` (letters, digits, `.` and `-`), unique with `index`.
fn spdx_id(kind: &str, name: &str, index: usize) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' })
        .collect();
    format!("SPDXRef-{kind}-{index}-{clean}")
}

/// Percent-encodes what a purl version may not hold verbatim.
fn purl_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '-' | '_' | '~' => c.to_string(),
            other => format!("%{:02X}", u32::from(other)),
        })
        .collect()
}

/// The purl of a Debian package: `pkg:deb/debian/name@version?arch=..&distro=..` (epoch as a
/// qualifier, as the purl specification asks).
pub fn purl(name: &str, version: &str, arch: &str, distro: &str) -> String {
    let (epoch, version) = match version.split_once(':') {
        Some((e, v)) if e.bytes().all(|b| b.is_ascii_digit()) => (Some(e), v),
        _ => (None, version),
    };
    let mut purl = format!(
        "pkg:deb/debian/{}@{}?arch={arch}&distro={distro}",
        purl_escape(name),
        purl_escape(version)
    );
    if let Some(epoch) = epoch {
        purl.push_str(&format!("&epoch={epoch}"));
    }
    purl
}

/// The SPDX document for `platform`, built from `lock`. Deterministic: the same image gives the
/// same bytes.
pub fn spdx(lock: &Lock, platform: &PlatformImage) -> Value {
    let image_digest = &platform.manifest.descriptor.digest;
    let hex = image_digest.strip_prefix("sha256:").unwrap_or(image_digest);
    let version = lock.config.annotations.get("version").cloned().unwrap_or_default();
    let distro = format!("{}-{}", lock.os_release.id, lock.os_release.version_codename);
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": lock.image,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "filesAnalyzed": false,
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!("pkg:oci/{}@sha256%3A{hex}?arch={}", lock.image, Platform::from_debian(&lock.architecture).architecture),
        }],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": lock.config.annotations.get("licenses").cloned().unwrap_or_else(|| "NOASSERTION".into()),
        "copyrightText": "NOASSERTION",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (index, p) in lock.packages().enumerate() {
        let id = spdx_id("Package", &p.name, index);
        packages.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "sourceInfo": format!("built from source package {} {}", p.source, p.source_version),
            "checksums": [{"algorithm": "SHA256", "checksumValue": p.sha256}],
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(&p.name, &p.version, &p.architecture, &distro),
            }],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }));
        relationships
            .push(json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    for (index, b) in lock.binaries.iter().enumerate() {
        let id = spdx_id("Binary", &b.name, index);
        packages.push(json!({
            "SPDXID": id,
            "name": b.name,
            "versionInfo": env!("CARGO_PKG_VERSION"),
            "downloadLocation": env!("CARGO_PKG_REPOSITORY"),
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": b.sha256}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "Apache-2.0",
            "copyrightText": "NOASSERTION",
        }));
        relationships
            .push(json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", lock.image, lock.architecture),
        "documentNamespace": format!("urn:cnpg-rs:spdx:{}:{hex}", lock.image),
        "creationInfo": {
            "created": platform.image_config.created,
            "creators": [format!("Tool: cnpg-rs-image-rebuilder-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// The SBOM artifact of `platform`: SPDX document and lock as layers, subject the image.
pub fn artifact(lock: &Lock, platform: &PlatformImage) -> Result<Artifact, Error> {
    let fail = |e| Error(lock.image.clone(), e);
    let spdx = Blob::raw(serde_json::to_vec(&spdx(lock, platform)).map_err(fail)?, MEDIA_SPDX);
    let lock_blob = Blob::raw(serde_json::to_vec(lock).map_err(fail)?, MEDIA_LOCK);
    let empty = Blob::raw(b"{}".to_vec(), MEDIA_EMPTY);
    let title = |name: String| BTreeMap::from([(format!("{ANNOTATION_PREFIX}title"), name)]);
    let mut spdx_layer = spdx.descriptor.clone();
    spdx_layer.annotations = title(format!("{}.{}.spdx.json", lock.image, lock.architecture));
    let mut lock_layer = lock_blob.descriptor.clone();
    lock_layer.annotations = title(Lock::file_name(&lock.image, &lock.architecture));
    let created = platform.image_config.created.clone();
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_MANIFEST.to_owned(),
        artifact_type: Some(MEDIA_SPDX.to_owned()),
        config: empty.descriptor.clone(),
        layers: vec![spdx_layer, lock_layer],
        subject: Some(Descriptor {
            annotations: BTreeMap::new(),
            platform: None,
            ..platform.manifest.descriptor.clone()
        }),
        annotations: BTreeMap::from([(format!("{ANNOTATION_PREFIX}created"), created)]),
    };
    let manifest = Blob::json(&manifest, MEDIA_MANIFEST).map_err(fail)?;
    Ok(Artifact {
        spdx,
        lock: lock_blob,
        empty,
        manifest,
        subject: Some(platform.manifest.descriptor.digest.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_escape_plus_and_move_the_epoch_to_a_qualifier() {
        assert_eq!(
            purl("libstdc++6", "14.2.0-19", "amd64", "debian-trixie"),
            "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=amd64&distro=debian-trixie"
        );
        assert_eq!(
            purl("zlib1g", "1:1.3.dfsg+really1.3.1-1+b1", "amd64", "debian-trixie"),
            "pkg:deb/debian/zlib1g@1.3.dfsg%2Breally1.3.1-1%2Bb1?arch=amd64&distro=debian-trixie&epoch=1"
        );
    }

    #[test]
    fn spdx_ids_are_valid_and_unique() {
        assert_eq!(spdx_id("Package", "libstdc++6", 3), "SPDXRef-Package-3-libstdc--6");
        assert_ne!(spdx_id("Package", "a+b", 1), spdx_id("Package", "a-b", 2));
    }
}
