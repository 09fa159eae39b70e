//! Certificates as a TLS peer will judge them: checked with the `openssl verify` command (an
//! independent implementation of chain and purpose checks) as well as through the API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_in_result,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::process::Command;

use cnpg_pki::{Authority, Renewal, Usage};

const NOW: i64 = 1_795_000_000; // 2026-11-18
const DAY: i64 = 86_400;

/// `openssl verify` of `leaf` against `ca` for `purpose` at `at` (unix seconds).
fn openssl_verify(ca: &str, leaf: &str, purpose: &str, at: i64) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), leaf).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            purpose,
            "-attime",
            &at.to_string(),
            "leaf.pem",
        ])
        .output()
        .expect("openssl is missing: scripts/setup.sh installs it");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    }
}

fn names() -> Vec<String> {
    cnpg_pki::server_names(
        "pg",
        "db",
        "cluster.local",
        &["rw", "r", "ro"],
        &["pg.example".into(), "10.0.0.7".into()],
    )
}

#[test]
fn a_cluster_ca_issues_server_and_client_certificates_peers_accept() {
    let ca = Authority::generate("pg", "db", NOW, 90).unwrap();
    let ca_pem = ca.certificate_pem().unwrap();
    let server = ca.issue("pg-rw", Usage::Server, &names(), NOW, 90).unwrap();
    let client = ca.issue("streaming_replica", Usage::Client, &[], NOW, 90).unwrap();
    openssl_verify(&ca_pem, &server.certificate, "sslserver", NOW).unwrap();
    openssl_verify(&ca_pem, &client.certificate, "sslclient", NOW).unwrap();
    assert!(
        openssl_verify(&ca_pem, &server.certificate, "sslclient", NOW).is_err(),
        "a server certificate is no client certificate"
    );
    assert!(
        openssl_verify(&ca_pem, &client.certificate, "sslserver", NOW).is_err(),
        "and the other way round"
    );
    assert!(
        openssl_verify(&ca_pem, &server.certificate, "sslserver", NOW + 91 * DAY).is_err(),
        "expired after 90 days"
    );
    cnpg_pki::issued_by(&server.certificate, &ca).unwrap();

    let parsed = openssl::x509::X509::from_pem(server.certificate.as_bytes()).unwrap();
    let sans = cnpg_pki::names_of(&parsed);
    for expected in [
        "pg-rw",
        "pg-rw.db",
        "pg-rw.db.svc",
        "pg-rw.db.svc.cluster.local",
        "pg-ro.db.svc",
        "pg-r",
        "pg.example",
        "10.0.0.7",
    ] {
        assert!(sans.iter().any(|s| s == expected), "{expected} missing from {sans:?}");
    }
    let other_ca = Authority::generate("other", "db", NOW, 90).unwrap();
    assert!(matches!(
        cnpg_pki::issued_by(&server.certificate, &other_ca),
        Err(cnpg_pki::Error::NotIssuedByCa)
    ));
    assert!(
        openssl_verify(
            &other_ca.certificate_pem().unwrap(),
            &server.certificate,
            "sslserver",
            NOW
        )
        .is_err()
    );
    assert!(server.key.expose().starts_with("-----BEGIN EC PRIVATE KEY-----"));
}

#[test]
fn renewal_decisions_follow_the_clock_and_the_names() {
    let ca = Authority::generate("pg", "db", NOW, 90).unwrap();
    let server = ca.issue("pg-rw", Usage::Server, &names(), NOW, 90).unwrap();
    let decide =
        |at: i64, expected: Option<&[String]>| cnpg_pki::renewal(&server.certificate, at, 7, expected).unwrap();
    assert_eq!(decide(NOW, Some(&names())), Renewal::Valid);
    assert_eq!(decide(NOW + 82 * DAY, None), Renewal::Valid, "8 days left");
    assert_eq!(decide(NOW + 84 * DAY, None), Renewal::Expiring, "6 days left");
    assert_eq!(decide(NOW + 100 * DAY, None), Renewal::Expiring, "expired");
    assert_eq!(decide(NOW - DAY, None), Renewal::NotYetValid);
    let mut more = names();
    more.push("pg-extra-rw".into());
    assert_eq!(decide(NOW, Some(&more)), Renewal::NamesChanged);

    // Renewal keeps the key pair, changes serial and dates, takes the new names.
    let renewed = ca.renew(&server, Usage::Server, &more, NOW + 84 * DAY, 90).unwrap();
    assert_eq!(renewed.key, server.key);
    assert_ne!(renewed.certificate, server.certificate);
    assert_eq!(
        cnpg_pki::renewal(&renewed.certificate, NOW + 84 * DAY, 7, Some(&more)).unwrap(),
        Renewal::Valid
    );
    assert_eq!(
        cnpg_pki::public_key_fingerprint(&renewed.certificate).unwrap(),
        cnpg_pki::public_key_fingerprint(&server.certificate).unwrap()
    );
    openssl_verify(
        &ca.certificate_pem().unwrap(),
        &renewed.certificate,
        "sslserver",
        NOW + 84 * DAY,
    )
    .unwrap();
}

#[test]
fn a_ca_reads_back_from_its_secret_and_keys_never_print() {
    let ca = Authority::generate("pg", "db", NOW, 90).unwrap();
    let pair = ca.pair().unwrap();
    let back = Authority::from_pem(&pair.certificate, pair.key.expose()).unwrap();
    let leaf = back.issue("streaming_replica", Usage::Client, &[], NOW, 90).unwrap();
    cnpg_pki::issued_by(&leaf.certificate, &ca).unwrap();
    let stranger = Authority::generate("x", "y", NOW, 1).unwrap().pair().unwrap();
    assert!(matches!(
        Authority::from_pem(&pair.certificate, stranger.key.expose()),
        Err(cnpg_pki::Error::KeyMismatch)
    ));
    let printed = format!("{pair:?} {back:?}");
    assert!(
        !printed.contains("PRIVATE KEY") && printed.contains("REDACTED"),
        "{printed}"
    );
    let fingerprint = cnpg_pki::public_key_fingerprint(&leaf.certificate).unwrap();
    assert_eq!(fingerprint.len(), 64);
}
