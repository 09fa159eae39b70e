//! Our OpenPGP verifier against signatures made by GnuPG, the reference implementation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use cnpg_imaging::pgp::{Error, Keyring};
use cnpg_testkit::gpg::Gpg;

const TEXT: &str = "Origin: Test\nSuite: stable\nSHA256:\n 0123 42 main/binary-amd64/Packages\n";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn keyring(gpg: &Gpg, fpr: &str) -> Keyring {
    Keyring::read(&gpg.export(fpr).unwrap(), now()).unwrap()
}

#[test]
fn rsa_signing_subkey_verifies_and_names_the_primary() {
    let gpg = Gpg::new().unwrap();
    let primary = gpg.generate("Archive <a@example.org>", "rsa3072", "1y", None).unwrap();
    let subkey = gpg.add_signing_subkey(&primary, "rsa3072", "1y").unwrap();
    let signed = gpg.clearsign(&subkey, TEXT, None).unwrap();

    let keys = keyring(&gpg, &primary);
    assert_eq!(keys.fingerprints(), vec![primary.clone()]);
    let verified = keys.verify_cleartext(&signed, now()).unwrap();
    assert_eq!(verified.text, TEXT);
    assert_eq!(verified.signer, primary);
}

#[test]
fn ed25519_primary_key_verifies() {
    let gpg = Gpg::new().unwrap();
    let primary = gpg.generate("Release <r@example.org>", "ed25519", "1y", None).unwrap();
    let signed = gpg.clearsign(&primary, TEXT, None).unwrap();
    let verified = keyring(&gpg, &primary).verify_cleartext(&signed, now()).unwrap();
    assert_eq!(verified.signer, primary);
}

#[test]
fn a_changed_byte_in_the_signed_text_is_rejected() {
    let gpg = Gpg::new().unwrap();
    let primary = gpg.generate("Archive <a@example.org>", "ed25519", "1y", None).unwrap();
    let signed = gpg.clearsign(&primary, TEXT, None).unwrap();
    let tampered = signed.replace("Suite: stable", "Suite: stablE");
    let err = keyring(&gpg, &primary).verify_cleartext(&tampered, now()).unwrap_err();
    assert!(matches!(err, Error::PinnedKeyFailed(_)), "{err}");
    assert!(err.to_string().contains("bad signature"), "{err}");
}

#[test]
fn a_signature_by_another_key_is_not_trusted_and_names_that_key() {
    let gpg = Gpg::new().unwrap();
    let pinned = gpg.generate("Pinned <p@example.org>", "ed25519", "1y", None).unwrap();
    let other = gpg.generate("Other <o@example.org>", "ed25519", "1y", None).unwrap();
    let signed = gpg.clearsign(&other, TEXT, None).unwrap();
    let err = keyring(&gpg, &pinned).verify_cleartext(&signed, now()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("not a pinned signing key"), "{message}");
    assert!(message.contains(&other), "the unknown signer is named: {message}");
}

#[test]
fn a_signature_by_an_expired_key_is_not_trusted() {
    let gpg = Gpg::new().unwrap();
    let past = Some("20200101T000000!");
    let primary = gpg.generate("Old <old@example.org>", "ed25519", "1d", past).unwrap();
    let signed = gpg.clearsign(&primary, TEXT, past).unwrap();
    let cert = gpg.export(&primary).unwrap();
    // In 2020 the signature was fine; today the key has long expired.
    let in_2020 = 1_577_840_000 + 3600;
    let then = Keyring::read(&cert, in_2020).unwrap();
    assert!(then.verify_cleartext(&signed, in_2020).is_ok());
    let err = Keyring::read(&cert, now())
        .unwrap()
        .verify_cleartext(&signed, now())
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn a_revoked_signing_subkey_is_not_trusted() {
    let gpg = Gpg::new().unwrap();
    let primary = gpg.generate("Archive <a@example.org>", "rsa3072", "1y", None).unwrap();
    let subkey = gpg.add_signing_subkey(&primary, "ed25519", "1y").unwrap();
    let signed = gpg.clearsign(&subkey, TEXT, None).unwrap();
    assert!(keyring(&gpg, &primary).verify_cleartext(&signed, now()).is_ok());

    gpg.revoke_subkey(&primary, &subkey).unwrap();
    let err = keyring(&gpg, &primary)
        .verify_cleartext(&signed, now() + 5)
        .unwrap_err();
    assert!(err.to_string().contains("may not sign"), "{err}");
}

#[test]
fn unsigned_text_is_rejected_as_such() {
    let gpg = Gpg::new().unwrap();
    let primary = gpg.generate("Archive <a@example.org>", "ed25519", "1y", None).unwrap();
    let err = keyring(&gpg, &primary).verify_cleartext(TEXT, now()).unwrap_err();
    assert!(matches!(err, Error::NotSigned), "{err}");
}
