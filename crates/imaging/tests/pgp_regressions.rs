//! Every message or keyring the differential test against gpgv (`pgp_differential.rs`) caught
//! us accepting while gpgv refused it, reduced to its smallest form, plus the cases reasoning
//! found beside them. Each is refused, and says why; the genuine message beside it verifies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use cnpg_imaging::pgp::Keyring;
use cnpg_testkit::openpgp::{
    self, Algo, Binding, FLAG_CERTIFY, FLAG_SIGN, SHA256, SHA512, SIG_TEXT, SecretKey, SelfSig, Subpacket,
};

const DAY: u32 = 86_400;
const TEXT: &str = "Origin: Test\nSuite: stable\nSHA256:\n 0123 42 main/binary-amd64/Packages\n";

fn now() -> u32 {
    u32::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// A certificate whose Ed25519 subkey signs, and the secret keys behind it.
struct Fixture {
    primary: SecretKey,
    subkey: SecretKey,
    now: u32,
}

impl Fixture {
    fn new() -> Self {
        let now = now();
        Self {
            primary: SecretKey::generate(Algo::Ed25519, now - 30 * DAY).unwrap(),
            subkey: SecretKey::generate(Algo::Ed25519, now - 29 * DAY).unwrap(),
            now,
        }
    }

    fn cert_with(&self, binding: Binding) -> Vec<u8> {
        let self_sig = SelfSig::new(FLAG_CERTIFY, self.now - 29 * DAY);
        openpgp::certificate(
            &self.primary,
            "Archive <a@example.org>",
            &self_sig,
            &[(&self.subkey, binding)],
        )
        .unwrap()
    }

    fn cert(&self) -> Vec<u8> {
        self.cert_with(Binding::signing(self.now - 28 * DAY))
    }

    fn keyring(&self) -> Keyring {
        Keyring::read(&self.cert(), u64::from(self.now)).unwrap()
    }

    fn good_sig(&self) -> Vec<u8> {
        let sig = self.subkey.sig(SIG_TEXT, SHA256, self.now - DAY);
        openpgp::sign_text(&self.subkey, &sig, TEXT).unwrap()
    }

    fn message(&self) -> String {
        openpgp::cleartext(TEXT, "SHA256", &self.good_sig())
    }

    /// Our verdict on `message` with the fixture's keyring: Ok(text) or the error.
    fn verify(&self, message: &str) -> Result<String, String> {
        self.keyring()
            .verify_cleartext(message, u64::from(self.now))
            .map(|v| v.text)
            .map_err(|e| e.to_string())
    }

    fn refused(&self, message: &str, why: &str) {
        match self.verify(message) {
            Ok(_) => panic!("accepted, but gpgv refuses it:\n{message}"),
            Err(e) => assert!(e.contains(why), "refused, but not for `{why}`: {e}"),
        }
    }
}

#[test]
fn the_genuine_message_verifies() {
    let f = Fixture::new();
    assert_eq!(f.verify(&f.message()).unwrap(), TEXT);
}

#[test]
fn trailing_blanks_the_signature_does_not_cover_are_not_returned() {
    let f = Fixture::new();
    let padded = f.message().replace("Suite: stable\n", "Suite: stable \t\r\n");
    assert_eq!(f.verify(&padded).unwrap(), TEXT);
}

#[test]
fn a_packet_that_is_not_a_signature_in_the_signature_block_is_refused() {
    let f = Fixture::new();
    // A one-pass signature packet (tag 4) before the good signature.
    let mut packets = openpgp::packet(4, &[3, 1, 8, 22, 1, 2, 3, 4, 5, 6, 7, 8, 1]);
    packets.extend(f.good_sig());
    f.refused(&openpgp::cleartext(TEXT, "SHA256", &packets), "a packet of type 4");
}

#[test]
fn anything_after_the_signature_is_refused() {
    let f = Fixture::new();
    let genuine = f.message();
    f.refused(&format!("{genuine}{genuine}"), "data after the signature");
    f.refused(&format!("{genuine}Suite: evil\n"), "data after the signature");
}

#[test]
fn armor_headers_other_than_hash_are_refused() {
    let f = Fixture::new();
    let with_comment = f.message().replace("Hash: SHA256\n", "Hash: SHA256\nComment: x\n");
    f.refused(&with_comment, "unexpected armor header");
}

#[test]
fn a_missing_or_mismatched_hash_header_is_refused() {
    let f = Fixture::new();
    // Without a Hash header gpgv assumes MD5 and cannot check a SHA-256 signature.
    f.refused(&f.message().replace("Hash: SHA256\n", ""), "no Hash header");
    f.refused(
        &f.message().replace("Hash: SHA256\n", "Hash: SHA512\n"),
        "which the Hash header does not announce",
    );
    // Announcing several is fine when the signature's is among them.
    let both = f.message().replace(
        "Hash: SHA256\n",
        &format!("Hash: {}, SHA256\n", openpgp::hash_name(SHA512)),
    );
    assert_eq!(f.verify(&both).unwrap(), TEXT);
}

#[test]
fn signature_armor_without_the_blank_line_after_its_headers_is_refused() {
    let f = Fixture::new();
    let message = f.message().replace(
        "-----BEGIN PGP SIGNATURE-----\n\n",
        "-----BEGIN PGP SIGNATURE-----\nVersion: x\n",
    );
    f.refused(&message, "do not end with an empty line");
}

#[test]
fn signature_armor_without_crc_or_with_overlong_lines_is_refused() {
    let f = Fixture::new();
    let genuine = f.message();
    let crc_line = genuine.lines().find(|l| l.starts_with('=')).unwrap();
    f.refused(&genuine.replace(&format!("{crc_line}\n"), ""), "no CRC-24 line");

    let block = openpgp::armor("SIGNATURE", &f.good_sig());
    let data: String = block.lines().skip(2).take_while(|l| !l.starts_with('=')).collect();
    let one_line = format!("-----BEGIN PGP SIGNATURE-----\n\n{data}\n{crc_line}\n-----END PGP SIGNATURE-----\n");
    let message = genuine.replace(&block, &one_line);
    assert_ne!(message, genuine);
    f.refused(&message, "longer than 76 characters");
}

#[test]
fn a_bad_signature_by_a_pinned_key_beside_a_good_one_is_refused() {
    let f = Fixture::new();
    let mut bad = openpgp::sign_text(&f.subkey, &f.subkey.sig(SIG_TEXT, SHA256, f.now - 2 * DAY), "other\n").unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut packets = f.good_sig();
    packets.extend(bad);
    f.refused(
        &openpgp::cleartext(TEXT, "SHA256", &packets),
        "names a pinned key but does not hold",
    );

    // A stranger's signature beside the good one is ignored, as apt ignores it.
    let stranger = SecretKey::generate(Algo::Ed25519, f.now - DAY).unwrap();
    let mut packets = f.good_sig();
    packets.extend(openpgp::sign_text(&stranger, &stranger.sig(SIG_TEXT, SHA256, f.now - DAY), TEXT).unwrap());
    assert_eq!(f.verify(&openpgp::cleartext(TEXT, "SHA256", &packets)).unwrap(), TEXT);
}

#[test]
fn a_signature_of_an_unknown_version_is_refused() {
    let f = Fixture::new();
    let mut v6 = f.good_sig();
    // The body starts after the two header octets of a short packet.
    v6[2] = 6;
    let mut packets = f.good_sig();
    packets.extend(v6);
    f.refused(&openpgp::cleartext(TEXT, "SHA256", &packets), "signature version 6");
}

#[test]
fn an_unknown_critical_subpacket_anywhere_voids_the_signature() {
    let f = Fixture::new();
    let critical = Subpacket::Raw {
        kind: 100,
        critical: true,
        body: vec![1],
    };
    let sig = f.subkey.sig(SIG_TEXT, SHA256, f.now - DAY).with_unhashed(critical);
    let packets = openpgp::sign_text(&f.subkey, &sig, TEXT).unwrap();
    f.refused(
        &openpgp::cleartext(TEXT, "SHA256", &packets),
        "unknown critical subpacket",
    );
}

#[test]
fn an_issuer_key_id_that_disagrees_with_the_fingerprint_names_no_key() {
    let f = Fixture::new();
    let mut wrong = f.subkey.key_id();
    wrong[7] ^= 1;
    let mut sig = f.subkey.sig(SIG_TEXT, SHA256, f.now - DAY);
    sig.unhashed = vec![Subpacket::IssuerKeyId(wrong)];
    let packets = openpgp::sign_text(&f.subkey, &sig, TEXT).unwrap();
    f.refused(
        &openpgp::cleartext(TEXT, "SHA256", &packets),
        "key ID and fingerprint disagree",
    );

    // Without a key ID, gpgv 2.2 cannot find the key; neither do we count the signature.
    let mut sig = f.subkey.sig(SIG_TEXT, SHA256, f.now - DAY);
    sig.unhashed.clear();
    let packets = openpgp::sign_text(&f.subkey, &sig, TEXT).unwrap();
    f.refused(&openpgp::cleartext(TEXT, "SHA256", &packets), "no issuer key ID");
}

#[test]
fn a_signature_dated_even_minutes_ahead_is_refused() {
    let f = Fixture::new();
    let sig = f.subkey.sig(SIG_TEXT, SHA256, f.now + 120);
    let packets = openpgp::sign_text(&f.subkey, &sig, TEXT).unwrap();
    f.refused(&openpgp::cleartext(TEXT, "SHA256", &packets), "dated in the future");
}

#[test]
fn a_binding_older_than_its_subkey_does_not_bind() {
    let f = Fixture::new();
    let early = Binding::signing(f.subkey.created - DAY);
    let keys = Keyring::read(&f.cert_with(early), u64::from(f.now)).unwrap();
    let err = keys
        .verify_cleartext(&f.message(), u64::from(f.now))
        .unwrap_err()
        .to_string();
    assert!(err.contains("may not sign"), "{err}");
}

#[test]
fn a_keyring_holding_a_key_twice_or_a_malformed_signature_is_refused() {
    let f = Fixture::new();
    let cert = f.cert();
    // The subkey packet (tag 14) twice in a row, the binding after the second.
    let sub = openpgp::packet(openpgp::TAG_PUBLIC_SUBKEY, f.subkey.public_body());
    let at = cert.windows(sub.len()).position(|w| w == sub.as_slice()).unwrap();
    let mut doubled = cert.clone();
    doubled.splice(at..at, sub.iter().copied());
    let err = Keyring::read(&doubled, u64::from(f.now)).unwrap_err().to_string();
    assert!(err.contains("appears twice"), "{err}");

    // A truncated direct-key signature on the primary: GnuPG drops the whole key block.
    let sig = f
        .primary
        .sig(openpgp::SIG_DIRECT_KEY, SHA256, f.now - DAY)
        .with(Subpacket::KeyFlags(FLAG_SIGN));
    let body = f.primary.sign(&sig, &[&f.primary.hashed_form()]).unwrap();
    let truncated = openpgp::packet(openpgp::TAG_SIGNATURE, &body[..body.len() - 10]);
    let head = openpgp::packet(openpgp::TAG_PUBLIC_KEY, f.primary.public_body());
    let mut broken = head.clone();
    broken.extend(truncated);
    broken.extend_from_slice(&cert[head.len()..]);
    let err = Keyring::read(&broken, u64::from(f.now)).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}

/// A v4 signature body (Ed25519, SHA-256) whose unhashed area holds `unhashed` as it is.
fn signature_body(unhashed: &[u8]) -> Vec<u8> {
    let mut body = vec![4, SIG_TEXT, 22, SHA256, 0, 0];
    body.extend(u16::try_from(unhashed.len()).unwrap().to_be_bytes());
    body.extend(unhashed);
    // The digest prefix, then r and s as one-bit MPIs.
    body.extend([0, 0, 0, 1, 1, 0, 1, 1]);
    body
}

/// An embedded-signature subpacket (type 32) around `inner`, with a five-octet length.
fn embedded(inner: &[u8]) -> Vec<u8> {
    let mut sub = vec![255];
    sub.extend(u32::try_from(inner.len() + 1).unwrap().to_be_bytes());
    sub.push(32);
    sub.extend(inner);
    sub
}

#[test]
fn embedded_signatures_nest_one_level_only() {
    // Found by review: every embedded signature was parsed recursively, and about 3,000 nested
    // levels overflowed a 2 MiB thread stack before any check. Now anything below the first
    // level is refused at once, however deep it goes (this test runs on a 2 MiB stack).
    let f = Fixture::new();
    for depth in [2, 2_900] {
        let mut body = signature_body(&[]);
        for _ in 0..depth {
            body = signature_body(&embedded(&body));
        }
        let mut packets = f.good_sig();
        packets.extend(openpgp::packet(2, &body));
        f.refused(
            &openpgp::cleartext(TEXT, "SHA256", &packets),
            "an embedded signature inside an embedded signature",
        );
    }
}

#[test]
fn a_signature_block_holds_at_most_sixteen_signatures() {
    // Each signature naming a pinned key is checked over the whole text; a block of thousands
    // would multiply the work. Debian signs with two keys; sixteen is plenty.
    let f = Fixture::new();
    let mut packets = Vec::new();
    for _ in 0..16 {
        packets.extend(f.good_sig());
    }
    assert_eq!(f.verify(&openpgp::cleartext(TEXT, "SHA256", &packets)).unwrap(), TEXT);
    packets.extend(f.good_sig());
    f.refused(&openpgp::cleartext(TEXT, "SHA256", &packets), "more than 16 signatures");
}
