//! Version 4 signature packets (RFC 9580 §5.2): parsing, the hashed trailer, and cryptographic
//! verification against one public key through OpenSSL.

use std::collections::BTreeMap;

use openssl::hash::{Hasher, MessageDigest};
use openssl::md::Md;
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::Verifier;

use super::Error;
use super::cert::{KeyMaterial, PublicKey};
use super::packet::Reader;

/// Signature types we check.
pub const SIG_TEXT: u8 = 0x01;
pub const SIG_SUBKEY_BINDING: u8 = 0x18;
pub const SIG_PRIMARY_BINDING: u8 = 0x19;
pub const SIG_DIRECT_KEY: u8 = 0x1F;
pub const SIG_KEY_REVOCATION: u8 = 0x20;
pub const SIG_SUBKEY_REVOCATION: u8 = 0x28;

/// Key flag: this key may sign data.
pub const FLAG_SIGN: u8 = 0x02;

/// Subpacket types we understand; an unknown one marked critical voids the signature.
const KNOWN_SUBPACKETS: &[u8] = &[
    2, 3, 4, 5, 7, 9, 11, 12, 16, 21, 22, 23, 24, 25, 27, 28, 29, 30, 31, 32, 33, 34, 35,
];

/// A parsed v4 signature.
#[derive(Debug, Clone)]
pub struct Signature {
    pub sig_type: u8,
    pub pk_algo: u8,
    pub hash_algo: u8,
    /// Everything from the version octet to the end of the hashed subpackets: hashed as is.
    hashed_prefix: Vec<u8>,
    left16: [u8; 2],
    material: Vec<Vec<u8>>,
    pub created: Option<u32>,
    pub expires_after: Option<u32>,
    pub key_expires_after: Option<u32>,
    pub key_flags: Option<u8>,
    pub issuer_key_id: Option<[u8; 8]>,
    pub issuer_fingerprint: Option<Vec<u8>>,
    pub embedded: Option<Box<Signature>>,
    /// A critical subpacket we do not understand: such a signature must not be trusted.
    pub unknown_critical: bool,
}

impl Signature {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        Self::parse_nested(body, false)
    }

    /// Parses a signature; `embedded` when it sits in another one's embedded-signature
    /// subpacket, where it may not embed one in turn (a primary key binding never does, and
    /// thousands of nested levels would exhaust the stack before any cryptographic check).
    fn parse_nested(body: &[u8], embedded: bool) -> Result<Self, Error> {
        let mut r = Reader::new(body);
        let version = r.u8()?;
        if version != 4 {
            return Err(Error::Unsupported(format!("signature version {version}")));
        }
        let sig_type = r.u8()?;
        let pk_algo = r.u8()?;
        let hash_algo = r.u8()?;
        let hashed_len = r.u16()?;
        let hashed = r.take(usize::from(hashed_len))?;
        let unhashed_len = usize::from(r.u16()?);
        let unhashed = r.take(unhashed_len)?;
        let left16 = r.array::<2>()?;
        let mut material = Vec::new();
        match pk_algo {
            // RSA: one MPI; EdDSA (legacy): two MPIs r and s.
            1 => material.push(r.mpi()?.to_vec()),
            22 => {
                material.push(r.mpi()?.to_vec());
                material.push(r.mpi()?.to_vec());
            }
            other => return Err(Error::Unsupported(format!("signature algorithm {other}"))),
        }
        let mut prefix = vec![version, sig_type, pk_algo, hash_algo];
        prefix.extend_from_slice(&hashed_len.to_be_bytes());
        prefix.extend_from_slice(hashed);
        let mut sig = Self {
            sig_type,
            pk_algo,
            hash_algo,
            hashed_prefix: prefix,
            left16,
            material,
            created: None,
            expires_after: None,
            key_expires_after: None,
            key_flags: None,
            issuer_key_id: None,
            issuer_fingerprint: None,
            embedded: None,
            unknown_critical: false,
        };
        sig.read_subpackets(hashed, true, embedded)?;
        sig.read_subpackets(unhashed, false, embedded)?;
        Ok(sig)
    }

    /// Reads subpackets. Only hashed ones may carry facts we rely on; the unhashed area may
    /// only name the issuer (a hint to find the key, checked by the signature itself) and
    /// carry the embedded back-signature (verified on its own).
    fn read_subpackets(&mut self, area: &[u8], hashed: bool, embedded: bool) -> Result<(), Error> {
        let mut r = Reader::new(area);
        while !r.is_empty() {
            let first = r.u8()?;
            let len = match first {
                0..=191 => usize::from(first),
                192..=254 => ((usize::from(first) - 192) << 8) + usize::from(r.u8()?) + 192,
                255 => usize::try_from(r.u32()?).map_err(|_| Error::Malformed("subpacket length".into()))?,
            };
            let mut sub = Reader::new(r.take(len)?);
            let kind = sub.u8()?;
            let critical = kind & 0x80 != 0;
            let kind = kind & 0x7F;
            // Wherever it sits, an unknown critical subpacket voids the signature (as in GnuPG).
            if critical && !KNOWN_SUBPACKETS.contains(&kind) {
                self.unknown_critical = true;
            }
            match (kind, hashed) {
                (2, true) => self.created = Some(sub.u32()?),
                (3, true) => self.expires_after = Some(sub.u32()?),
                (9, true) => self.key_expires_after = Some(sub.u32()?),
                (27, true) => self.key_flags = sub.rest().first().copied(),
                (16, _) => self.issuer_key_id = Some(sub.array::<8>()?),
                (33, _) => {
                    let _version = sub.u8()?;
                    self.issuer_fingerprint = Some(sub.rest().to_vec());
                }
                (32, _) if embedded => {
                    return Err(Error::Malformed(
                        "an embedded signature inside an embedded signature".into(),
                    ));
                }
                (32, _) => self.embedded = Some(Box::new(Signature::parse_nested(sub.rest(), true)?)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether this signature names `key` as its issuer (by fingerprint or key ID).
    pub fn names_issuer(&self, key: &PublicKey) -> bool {
        self.names_fingerprint(&key.fingerprint)
    }

    /// Whether this signature names the key with fingerprint `fpr` as its issuer, without
    /// ambiguity: by its issuer key ID (GnuPG 2.2 finds keys by it, and ignores a signature
    /// without one), and by its issuer fingerprint too when it has one. A signature whose
    /// two disagree names no key at all.
    pub fn names_fingerprint(&self, fpr: &[u8; 20]) -> bool {
        let by_id = self
            .issuer_key_id
            .as_ref()
            .is_some_and(|id| Some(id.as_slice()) == fpr.get(12..));
        let by_fpr = self
            .issuer_fingerprint
            .as_ref()
            .is_none_or(|named| named.as_slice() == fpr.as_slice());
        by_id && by_fpr
    }

    /// Whether this signature claims, by either of its issuer subpackets, to come from the
    /// key with fingerprint `fpr`.
    pub fn claims(&self, fpr: &[u8; 20]) -> bool {
        self.issuer_key_id
            .as_ref()
            .is_some_and(|id| Some(id.as_slice()) == fpr.get(12..))
            || self
                .issuer_fingerprint
                .as_ref()
                .is_some_and(|named| named.as_slice() == fpr.as_slice())
    }

    /// Whether the signature itself has expired at `now`.
    pub fn expired_at(&self, now: u64) -> bool {
        match (self.created, self.expires_after) {
            (Some(created), Some(after)) if after != 0 => u64::from(created) + u64::from(after) <= now,
            _ => false,
        }
    }

    /// Verifies this signature over `parts` (concatenated) with `key`.
    pub fn verify(&self, key: &PublicKey, parts: &[&[u8]]) -> Result<(), Error> {
        let mut hasher = Hasher::new(hash_algorithm(self.hash_algo)?.0)?;
        for part in parts {
            hasher.update(part)?;
        }
        self.verify_hashed(key, &hasher)
    }

    /// Verifies this signature with `key` over data already fed to `hashed` (a hasher of
    /// this signature's algorithm, left as it is): the cheap checks first, then this
    /// signature's trailer on a copy of the hash, the two-octet prefix, and the key's check of
    /// the digest. The data is never hashed again, however many signatures share it.
    pub fn verify_hashed(&self, key: &PublicKey, hashed: &Hasher) -> Result<(), Error> {
        if self.unknown_critical {
            return Err(Error::BadSignature("it carries an unknown critical subpacket".into()));
        }
        // A key cannot have signed before it existed (GnuPG calls this a time conflict).
        if self.created.is_some_and(|created| created < key.created) {
            return Err(Error::BadSignature("it is older than the key that made it".into()));
        }
        let (_, md) = hash_algorithm(self.hash_algo)?;
        let same_algorithm = matches!(
            (&key.material, self.pk_algo, self.material.as_slice()),
            (KeyMaterial::Rsa { .. }, 1, [_]) | (KeyMaterial::Ed25519(_), 22, [_, _])
        );
        if !same_algorithm {
            return Err(Error::BadSignature("signature and key algorithms differ".into()));
        }
        let digest = self.finish(hashed)?;
        if digest.get(..2) != Some(self.left16.as_slice()) {
            return Err(Error::BadSignature(
                "digest prefix mismatch (the signed data was changed)".into(),
            ));
        }
        let good = match (&key.material, self.material.as_slice()) {
            (KeyMaterial::Rsa { pkey, modulus_len }, [sig]) => {
                // PKCS#1 v1.5 over the digest we computed: OpenSSL checks the DigestInfo.
                let padded = left_pad(sig, *modulus_len)?;
                let mut ctx = PkeyCtx::new(pkey)?;
                ctx.verify_init()?;
                ctx.set_rsa_padding(Padding::PKCS1)?;
                ctx.set_signature_md(md)?;
                ctx.verify(&digest, &padded).unwrap_or(false)
            }
            (KeyMaterial::Ed25519(pkey), [r, s]) => {
                let mut raw = left_pad(r, 32)?;
                raw.extend(left_pad(s, 32)?);
                Verifier::new_without_digest(pkey)?.verify_oneshot(&raw, &digest)?
            }
            _ => false,
        };
        if good {
            Ok(())
        } else {
            Err(Error::BadSignature("the cryptographic check failed".into()))
        }
    }

    /// The digest of the hashed data, this signature's hashed area and its v4 trailer.
    fn finish(&self, hashed: &Hasher) -> Result<openssl::hash::DigestBytes, Error> {
        let trailer_len =
            u32::try_from(self.hashed_prefix.len()).map_err(|_| Error::Malformed("hashed area".into()))?;
        let mut hasher = hashed.clone();
        hasher.update(&self.hashed_prefix)?;
        hasher.update(&[0x04, 0xFF])?;
        hasher.update(&trailer_len.to_be_bytes())?;
        Ok(hasher.finish()?)
    }
}

/// A text to be checked against several signatures, hashed once per algorithm on first use.
pub struct TextHashes<'a> {
    text: &'a [u8],
    hashed: BTreeMap<u8, Hasher>,
}

impl<'a> TextHashes<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            hashed: BTreeMap::new(),
        }
    }

    /// A hasher of algorithm `hash_algo` that has consumed the text.
    pub fn get(&mut self, hash_algo: u8) -> Result<&Hasher, Error> {
        if !self.hashed.contains_key(&hash_algo) {
            let mut hasher = Hasher::new(hash_algorithm(hash_algo)?.0)?;
            hasher.update(self.text)?;
            self.hashed.insert(hash_algo, hasher);
        }
        self.hashed
            .get(&hash_algo)
            .ok_or_else(|| Error::Malformed("hash state".into()))
    }
}

/// A hash algorithm by its OpenPGP ID, SHA-2 only: MD5, SHA-1 and RIPEMD-160 are refused
/// whatever the key.
fn hash_algorithm(id: u8) -> Result<(MessageDigest, &'static openssl::md::MdRef), Error> {
    match id {
        8 => Ok((MessageDigest::sha256(), Md::sha256())),
        9 => Ok((MessageDigest::sha384(), Md::sha384())),
        10 => Ok((MessageDigest::sha512(), Md::sha512())),
        11 => Ok((MessageDigest::sha224(), Md::sha224())),
        other => Err(Error::WeakHash(other)),
    }
}

fn left_pad(bytes: &[u8], len: usize) -> Result<Vec<u8>, Error> {
    let pad = len
        .checked_sub(bytes.len())
        .ok_or_else(|| Error::Malformed("signature value longer than the key".into()))?;
    let mut out = vec![0; pad];
    out.extend_from_slice(bytes);
    Ok(out)
}
