//! Verification of OpenPGP signatures on repository metadata, on OpenSSL.
//!
//! Deliberately small: version 4 keys and signatures, RSA (≥ 2048 bits) and Ed25519 (legacy
//! EdDSA, as Debian and GnuPG use it), SHA-2 hashes only. A key counts when its
//! self-signatures verify; a subkey counts when it is bound for signing and cross-certified;
//! revoked and expired keys never count. A message is trusted when at least one of its
//! signatures verifies with a key of a pinned certificate that was valid both when it signed
//! and now, and no signature naming a pinned key fails; signatures by other keys are ignored.
//! Never more lenient than `gpgv` read the way apt reads it: the differential test in
//! `tests/pgp_differential.rs` holds us to that.

mod armor;
mod cert;
mod cleartext;
mod packet;
mod signature;

pub use cert::Cert;

use cert::parse_certs;
use signature::{SIG_TEXT, Signature};

/// The most signatures a cleartext message may carry (Debian's suites have two).
pub const MAX_SIGNATURES: usize = 16;

/// Verifying a signature or reading a key failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed armor: {0}")]
    Armor(String),
    #[error("malformed OpenPGP data: {0}")]
    Malformed(String),
    #[error("unsupported OpenPGP data: {0}")]
    Unsupported(String),
    #[error("hash algorithm {0} is too weak or unknown (SHA-2 required)")]
    WeakHash(u8),
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("key {0} has no valid self-signature")]
    NoSelfSignature(String),
    #[error("the file is not signed (no cleartext signature found)")]
    NotSigned,
    #[error("no signature verifies with a pinned key: {}", .0.join("; "))]
    NotTrusted(Vec<String>),
    #[error("refused: a signature names a pinned key but does not hold ({0})")]
    PinnedKeyFailed(String),
    #[error("OpenSSL failed")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// The certificates trusted for one repository.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    certs: Vec<Cert>,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed text (dash-unescaped, `\n` line ends).
    pub text: String,
    /// Fingerprint of the pinned certificate whose key made the good signature.
    pub signer: String,
    /// When that signature was made (seconds since the epoch).
    pub signed_at: u64,
}

impl Keyring {
    /// Reads certificates from an armored (`-----BEGIN PGP PUBLIC KEY BLOCK-----`) or binary
    /// key file, checking their self-signatures at `now`.
    pub fn read(data: &[u8], now: u64) -> Result<Self, Error> {
        let blocks = match std::str::from_utf8(data) {
            Ok(text) if text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") => {
                armor::decode_all(text, "PUBLIC KEY BLOCK")?
            }
            _ => vec![data.to_vec()],
        };
        let mut certs = Vec::new();
        for block in blocks {
            certs.extend(parse_certs(&block, now)?);
        }
        Ok(Self { certs })
    }

    /// Adds the certificates of `other`.
    pub fn extend(&mut self, other: Keyring) {
        self.certs.extend(other.certs);
    }

    /// Primary fingerprints (uppercase hex) of the certificates held.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs.iter().map(|c| c.primary.fingerprint_hex()).collect()
    }

    /// Verifies a cleartext-signed message (an `InRelease` file) at time `now`.
    ///
    /// Trusted when one signature verifies with a pinned signing key, and no signature that
    /// names a key of a pinned certificate fails: a broken, expired or revoked signature by a
    /// key we pin means someone tampered with the file or the key, so the whole file is
    /// refused (as apt refuses a file with a bad signature beside a good one). Signatures by
    /// keys we do not hold are ignored.
    pub fn verify_cleartext(&self, message: &str, now: u64) -> Result<Verified, Error> {
        let parts = cleartext::split(message)?;
        let block = armor::decode_one(parts.armored_signature, "SIGNATURE")?;
        let packets = packet::packets(&block)?;
        if packets.len() > MAX_SIGNATURES {
            return Err(Error::Malformed(format!(
                "{} packets in the signature block: more than {MAX_SIGNATURES} signatures",
                packets.len()
            )));
        }
        let mut good = None;
        let mut ignored = Vec::new();
        // The signed text hashed once per hash algorithm, whatever the number of signatures.
        let mut text_hashed = signature::TextHashes::new(parts.signed.as_slice());
        for packet in packets {
            if packet.tag != packet::TAG_SIGNATURE {
                return Err(Error::Malformed(format!(
                    "a packet of type {} in the signature block",
                    packet.tag
                )));
            }
            // A signature we cannot read is refused outright, whoever made it: gpgv 2.2 loses
            // the whole block over some of them.
            let sig = Signature::parse(packet.body)?;
            match self.check(&sig, &parts, &mut text_hashed, now) {
                Ok(verified) => {
                    good.get_or_insert(verified);
                }
                Err(problem) if self.holds_key_claimed_by(&sig) => {
                    return Err(Error::PinnedKeyFailed(problem));
                }
                Err(problem) => ignored.push(problem),
            }
        }
        let (signer, signed_at) = good.ok_or(Error::NotTrusted(ignored))?;
        Ok(Verified {
            text: parts.text,
            signer,
            signed_at,
        })
    }

    /// Whether `sig` claims (by key ID or fingerprint) to come from any key of a pinned
    /// certificate, signing or not.
    fn holds_key_claimed_by(&self, sig: &Signature) -> bool {
        self.certs.iter().any(|c| c.fingerprints.iter().any(|f| sig.claims(f)))
    }

    /// Checks one signature over the signed text: returns the signer's primary fingerprint
    /// and the signature time, or why it does not count.
    fn check(
        &self,
        sig: &Signature,
        parts: &cleartext::Cleartext<'_>,
        text_hashed: &mut signature::TextHashes<'_>,
        now: u64,
    ) -> Result<(String, u64), String> {
        let issuer = sig
            .issuer_fingerprint
            .as_deref()
            .or(sig.issuer_key_id.as_ref().map(|id| id.as_slice()))
            .map(hex::encode_upper)
            .unwrap_or_else(|| "an unnamed key".to_owned());
        if sig.sig_type != SIG_TEXT {
            return Err(format!(
                "signature by {issuer} is of type {:#04x}, not a text signature",
                sig.sig_type
            ));
        }
        let Some(key_id) = sig.issuer_key_id else {
            return Err(format!("signature by {issuer} has no issuer key ID"));
        };
        if sig
            .issuer_fingerprint
            .as_ref()
            .is_some_and(|f| f.get(12..) != Some(key_id.as_slice()))
        {
            return Err(format!(
                "signature by {issuer}: its issuer key ID and fingerprint disagree"
            ));
        }
        if !parts.hashes.contains(&sig.hash_algo) {
            return Err(format!(
                "signature by {issuer} uses hash algorithm {}, which the Hash header does not announce",
                sig.hash_algo
            ));
        }
        let created = u64::from(
            sig.created
                .ok_or_else(|| format!("signature by {issuer} has no creation time"))?,
        );
        if created > now {
            return Err(format!("signature by {issuer} is dated in the future"));
        }
        if sig.expired_at(now) {
            return Err(format!("signature by {issuer} has expired"));
        }
        let candidates: Vec<_> = self
            .certs
            .iter()
            .flat_map(|c| c.signing_keys.iter())
            .filter(|k| sig.names_issuer(&k.key))
            .collect();
        if candidates.is_empty() {
            return Err(if self.holds_key_claimed_by(sig) {
                format!(
                    "signature by {issuer}: a key of a pinned certificate that may not sign (revoked, unbound, not cross-certified or not flagged for signing)"
                )
            } else {
                format!("signature by {issuer}: not a pinned signing key")
            });
        }
        let mut why = Vec::new();
        for key in candidates {
            let live = |t: u64| key.valid_from <= t && key.valid_until.is_none_or(|u| t < u);
            if !live(created) || !live(now) {
                why.push(format!("signature by {issuer}: the key is expired or not yet valid"));
                continue;
            }
            let hashed = text_hashed.get(sig.hash_algo).map_err(|e| e.to_string())?;
            match sig.verify_hashed(&key.key, hashed) {
                Ok(()) => return Ok((key.primary.clone(), created)),
                Err(e) => why.push(format!("signature by {issuer}: {e}")),
            }
        }
        Err(why.join("; "))
    }
}
