//! Certificates (transferable public keys, RFC 9580 §10.1): the primary key, its user IDs and
//! subkeys, and which of those keys may sign data at a given time.

use openssl::bn::BigNum;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::Rsa;

use super::Error;
use super::packet::{Reader, TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY, TAG_SIGNATURE, TAG_USER_ID, packets};
use super::signature::{
    FLAG_SIGN, SIG_DIRECT_KEY, SIG_KEY_REVOCATION, SIG_PRIMARY_BINDING, SIG_SUBKEY_BINDING, SIG_SUBKEY_REVOCATION,
    Signature,
};

/// The smallest RSA modulus we accept.
const MIN_RSA_BITS: u32 = 2048;
/// OID of Ed25519 for legacy EdDSA keys (1.3.6.1.4.1.11591.15.1).
const ED25519_OID: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01];

/// Public key material usable with OpenSSL.
#[derive(Clone)]
pub enum KeyMaterial {
    Rsa { pkey: PKey<Public>, modulus_len: usize },
    Ed25519(PKey<Public>),
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rsa { modulus_len, .. } => write!(f, "RSA-{}", modulus_len * 8),
            Self::Ed25519(_) => f.write_str("Ed25519"),
        }
    }
}

/// A v4 public key or subkey.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub created: u32,
    pub material: KeyMaterial,
    pub fingerprint: [u8; 20],
    body: Vec<u8>,
}

impl PublicKey {
    fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(body);
        let version = r.u8()?;
        if version != 4 {
            return Err(Error::Unsupported(format!("key version {version}")));
        }
        let created = r.u32()?;
        let algo = r.u8()?;
        let material = match algo {
            1..=3 => {
                let n = BigNum::from_slice(r.mpi()?)?;
                let e = BigNum::from_slice(r.mpi()?)?;
                if n.num_bits() < i32::try_from(MIN_RSA_BITS).unwrap_or(i32::MAX) {
                    return Err(Error::Unsupported(format!("RSA key of {} bits", n.num_bits())));
                }
                let modulus_len = usize::try_from(n.num_bytes()).map_err(|_| Error::Malformed("RSA modulus".into()))?;
                let pkey = PKey::from_rsa(Rsa::from_public_components(n, e)?)?;
                KeyMaterial::Rsa { pkey, modulus_len }
            }
            22 => {
                let oid_len = usize::from(r.u8()?);
                let oid = r.take(oid_len)?;
                if oid != ED25519_OID {
                    return Err(Error::Unsupported("EdDSA key on a curve other than Ed25519".into()));
                }
                // A native point: 0x40 followed by the 32-byte key.
                let point = r.mpi()?;
                let raw = match point.split_first() {
                    Some((0x40, raw)) if raw.len() == 32 => raw,
                    _ => return Err(Error::Malformed("Ed25519 point encoding".into())),
                };
                KeyMaterial::Ed25519(PKey::public_key_from_raw_bytes(raw, Id::ED25519)?)
            }
            other => return Err(Error::Unsupported(format!("public key algorithm {other}"))),
        };
        let mut framed = vec![0x99];
        framed.extend_from_slice(
            &u16::try_from(body.len())
                .map_err(|_| Error::Malformed("key too long".into()))?
                .to_be_bytes(),
        );
        framed.extend_from_slice(body);
        let digest = hash(MessageDigest::sha1(), &framed)?;
        let fingerprint = <[u8; 20]>::try_from(&*digest).map_err(|_| Error::Malformed("fingerprint".into()))?;
        Ok(Self {
            created,
            material,
            fingerprint,
            body: framed,
        })
    }

    /// The 64-bit key ID: the low eight octets of the fingerprint.
    pub fn key_id(&self) -> &[u8] {
        self.fingerprint.get(12..).unwrap_or_default()
    }

    /// The fingerprint as uppercase hex, as `gpg` prints it.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode_upper(self.fingerprint)
    }

    /// The key framed for hashing (0x99, two-octet length, body).
    pub fn hashed_form(&self) -> &[u8] {
        &self.body
    }
}

/// A key that may sign data during `[valid_from, valid_until)`.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub key: PublicKey,
    /// Fingerprint of the certificate's primary key: the identity we pin.
    pub primary: String,
    pub valid_from: u64,
    pub valid_until: Option<u64>,
}

/// A certificate after its self-signatures were checked.
#[derive(Debug, Clone)]
pub struct Cert {
    pub primary: PublicKey,
    pub user_ids: Vec<String>,
    /// Keys allowed to sign data: the primary (unless its flags say otherwise) and every
    /// subkey with a valid binding, the signing flag and a valid back-signature.
    pub signing_keys: Vec<SigningKey>,
    /// Fingerprints of every key the certificate holds, signing or not, bound or not: a
    /// signature naming one of them that does not verify is an alarm, not noise.
    pub fingerprints: Vec<[u8; 20]>,
}

#[derive(Default)]
struct Component<'a> {
    packet: &'a [u8],
    sigs: Vec<Signature>,
}

/// Parses one or more certificates from binary packets, checking every self-signature at `now`.
pub fn parse_certs(data: &[u8], now: u64) -> Result<Vec<Cert>, Error> {
    let mut certs = Vec::new();
    let mut current: Option<(Component<'_>, Vec<Component<'_>>, Vec<Component<'_>>)> = None;
    for packet in packets(data)? {
        match packet.tag {
            TAG_PUBLIC_KEY => {
                if let Some((primary, uids, subs)) = current.take() {
                    certs.push(build_cert(primary, uids, subs, now)?);
                }
                current = Some((
                    Component {
                        packet: packet.body,
                        sigs: Vec::new(),
                    },
                    Vec::new(),
                    Vec::new(),
                ));
            }
            tag => {
                let Some((primary, uids, subs)) = current.as_mut() else {
                    return Err(Error::Malformed("key data before the primary key".into()));
                };
                match tag {
                    TAG_USER_ID => uids.push(Component {
                        packet: packet.body,
                        sigs: Vec::new(),
                    }),
                    TAG_PUBLIC_SUBKEY => subs.push(Component {
                        packet: packet.body,
                        sigs: Vec::new(),
                    }),
                    TAG_SIGNATURE => {
                        // Attach to the latest component: subkey, else user ID, else the key.
                        let target = if !subs.is_empty() {
                            subs.last_mut()
                        } else if !uids.is_empty() {
                            uids.last_mut()
                        } else {
                            Some(primary)
                        };
                        // Signatures of other versions or algorithms are skipped (third-party
                        // certifications often are); a malformed one voids the keyring, as a
                        // malformed packet voids the key block for GnuPG.
                        match (target, Signature::parse(packet.body)) {
                            (Some(target), Ok(sig)) => target.sigs.push(sig),
                            (_, Err(Error::Unsupported(_))) | (None, Ok(_)) => {}
                            (_, Err(e)) => return Err(e),
                        }
                    }
                    // User attributes, trust packets and the like are ignored; signatures that
                    // follow a user attribute then attach to the previous component and fail.
                    _ => {}
                }
            }
        }
    }
    if let Some((primary, uids, subs)) = current.take() {
        certs.push(build_cert(primary, uids, subs, now)?);
    }
    if certs.is_empty() {
        return Err(Error::Malformed("no public key found".into()));
    }
    Ok(certs)
}

fn build_cert(
    primary: Component<'_>,
    uids: Vec<Component<'_>>,
    subs: Vec<Component<'_>>,
    now: u64,
) -> Result<Cert, Error> {
    let key = PublicKey::parse(primary.packet)?;
    let by_primary = |sig: &&Signature| sig.names_issuer(&key) && sig.created.is_some_and(|c| u64::from(c) <= now);

    // Revocation of the whole key.
    let revoked = primary
        .sigs
        .iter()
        .filter(by_primary)
        .any(|s| s.sig_type == SIG_KEY_REVOCATION && s.verify(&key, &[key.hashed_form()]).is_ok());

    // Self-signatures: on user IDs, or directly on the key. The newest valid one rules.
    let mut self_sigs: Vec<&Signature> = Vec::new();
    let mut user_ids = Vec::new();
    for uid in &uids {
        let mut framed = vec![0xB4];
        framed.extend_from_slice(&u32::try_from(uid.packet.len()).unwrap_or(u32::MAX).to_be_bytes());
        framed.extend_from_slice(uid.packet);
        let valid: Vec<&Signature> = uid
            .sigs
            .iter()
            .filter(by_primary)
            .filter(|s| (0x10..=0x13).contains(&s.sig_type) && !s.expired_at(now))
            .filter(|s| s.verify(&key, &[key.hashed_form(), &framed]).is_ok())
            .collect();
        if !valid.is_empty() {
            user_ids.push(String::from_utf8_lossy(uid.packet).into_owned());
        }
        self_sigs.extend(valid);
    }
    self_sigs.extend(
        primary
            .sigs
            .iter()
            .filter(by_primary)
            .filter(|s| s.sig_type == SIG_DIRECT_KEY && !s.expired_at(now))
            .filter(|s| s.verify(&key, &[key.hashed_form()]).is_ok()),
    );
    let Some(latest) = self_sigs.iter().max_by_key(|s| s.created) else {
        return Err(Error::NoSelfSignature(key.fingerprint_hex()));
    };
    let primary_fpr = key.fingerprint_hex();
    // Every subkey must at least be readable, and no key may appear twice: GnuPG makes
    // something else of such certificates than we would.
    let mut fingerprints = vec![key.fingerprint];
    for sub in &subs {
        let fpr = match PublicKey::parse(sub.packet) {
            Ok(subkey) => subkey.fingerprint,
            Err(Error::Unsupported(_)) => continue,
            Err(e) => return Err(e),
        };
        if fingerprints.contains(&fpr) {
            return Err(Error::Malformed(format!(
                "key {} appears twice in certificate {primary_fpr}",
                hex::encode_upper(fpr)
            )));
        }
        fingerprints.push(fpr);
    }
    let mut signing_keys = Vec::new();
    if !revoked {
        let valid_until = latest
            .key_expires_after
            .filter(|e| *e != 0)
            .map(|e| u64::from(key.created) + u64::from(e));
        if latest.key_flags.is_none_or(|f| f & FLAG_SIGN != 0) {
            signing_keys.push(SigningKey {
                key: key.clone(),
                primary: primary_fpr.clone(),
                valid_from: u64::from(key.created),
                valid_until,
            });
        }
        for sub in &subs {
            if let Some(signing) = bound_signing_subkey(&key, sub, now) {
                // A subkey cannot outlive its primary.
                let until = match (signing.1, valid_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                signing_keys.push(SigningKey {
                    valid_from: u64::from(signing.0.created),
                    key: signing.0,
                    primary: primary_fpr.clone(),
                    valid_until: until,
                });
            }
        }
    }
    Ok(Cert {
        primary: key,
        user_ids,
        signing_keys,
        fingerprints,
    })
}

/// The subkey with its expiry when it is bound by `primary`, flagged for signing, cross-
/// certified by a back-signature, and not revoked.
fn bound_signing_subkey(primary: &PublicKey, sub: &Component<'_>, now: u64) -> Option<(PublicKey, Option<u64>)> {
    let subkey = PublicKey::parse(sub.packet).ok()?;
    let parts: [&[u8]; 2] = [primary.hashed_form(), subkey.hashed_form()];
    let by_primary = |s: &&Signature| s.names_issuer(primary) && s.created.is_some_and(|c| u64::from(c) <= now);
    let revoked = sub
        .sigs
        .iter()
        .filter(by_primary)
        .any(|s| s.sig_type == SIG_SUBKEY_REVOCATION && s.verify(primary, &parts).is_ok());
    if revoked {
        return None;
    }
    let binding = sub
        .sigs
        .iter()
        .filter(by_primary)
        .filter(|s| s.sig_type == SIG_SUBKEY_BINDING && !s.expired_at(now))
        .filter(|s| s.verify(primary, &parts).is_ok())
        .max_by_key(|s| s.created)?;
    if binding.key_flags.is_none_or(|f| f & FLAG_SIGN == 0) {
        return None;
    }
    let back = binding.embedded.as_deref()?;
    if back.sig_type != SIG_PRIMARY_BINDING || back.verify(&subkey, &parts).is_err() {
        return None;
    }
    let until = binding
        .key_expires_after
        .filter(|e| *e != 0)
        .map(|e| u64::from(subkey.created) + u64::from(e));
    Some((subkey, until))
}
