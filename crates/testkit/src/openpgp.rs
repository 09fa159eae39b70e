//! OpenPGP made by hand, for tests that need what no well-behaved tool writes: subkeys without
//! a binding or a back-signature, revocations, expiries in the past, weak hashes, unknown
//! critical subpackets, signatures dated in the future. Version 4 only, RSA and Ed25519 keys
//! (the kinds repositories use), signed through OpenSSL. GnuPG stays the independent judge;
//! this module only writes.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;

/// Signature types (RFC 9580 §5.2.1).
pub const SIG_BINARY: u8 = 0x00;
pub const SIG_TEXT: u8 = 0x01;
pub const SIG_POSITIVE_CERT: u8 = 0x13;
pub const SIG_SUBKEY_BINDING: u8 = 0x18;
pub const SIG_PRIMARY_BINDING: u8 = 0x19;
pub const SIG_DIRECT_KEY: u8 = 0x1F;
pub const SIG_KEY_REVOCATION: u8 = 0x20;
pub const SIG_SUBKEY_REVOCATION: u8 = 0x28;

/// Key flags.
pub const FLAG_CERTIFY: u8 = 0x01;
pub const FLAG_SIGN: u8 = 0x02;
pub const FLAG_ENCRYPT: u8 = 0x0C;

/// Hash algorithm identifiers.
pub const MD5: u8 = 1;
pub const SHA1: u8 = 2;
pub const SHA256: u8 = 8;
pub const SHA384: u8 = 9;
pub const SHA512: u8 = 10;
pub const SHA224: u8 = 11;

/// Packet tags.
pub const TAG_SIGNATURE: u8 = 2;
pub const TAG_PUBLIC_KEY: u8 = 6;
pub const TAG_USER_ID: u8 = 13;
pub const TAG_PUBLIC_SUBKEY: u8 = 14;

/// The armor name of each hash algorithm, as a cleartext `Hash:` header spells it.
pub fn hash_name(id: u8) -> &'static str {
    match id {
        MD5 => "MD5",
        SHA1 => "SHA1",
        SHA256 => "SHA256",
        SHA384 => "SHA384",
        SHA512 => "SHA512",
        SHA224 => "SHA224",
        _ => "UNKNOWN",
    }
}

fn digest(id: u8) -> anyhow::Result<MessageDigest> {
    Ok(match id {
        MD5 => MessageDigest::md5(),
        SHA1 => MessageDigest::sha1(),
        SHA256 => MessageDigest::sha256(),
        SHA384 => MessageDigest::sha384(),
        SHA512 => MessageDigest::sha512(),
        SHA224 => MessageDigest::sha224(),
        other => bail!("no digest for hash algorithm {other}"),
    })
}

/// Which kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// Legacy EdDSA on Ed25519 (algorithm 22), what GnuPG and Debian's release keys use.
    Ed25519,
    /// RSA with this many bits.
    Rsa(u32),
}

/// A secret key: it signs, and its public half becomes a key or subkey packet.
pub struct SecretKey {
    pkey: PKey<Private>,
    pub algo: Algo,
    pub created: u32,
    body: Vec<u8>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretKey({:?}, {})",
            self.algo,
            hex::encode_upper(self.fingerprint())
        )
    }
}

/// A multiprecision integer: bit count, then the big-endian bytes without leading zeros.
fn mpi(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let bytes = bytes.get(start..).unwrap_or_default();
    let bits = bytes
        .first()
        .map_or(0, |first| (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize));
    let mut out = u16::try_from(bits).unwrap_or(u16::MAX).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

impl SecretKey {
    /// A new key created at `created` (seconds since the epoch).
    pub fn generate(algo: Algo, created: u32) -> anyhow::Result<Self> {
        let mut body = vec![4];
        body.extend_from_slice(&created.to_be_bytes());
        let pkey = match algo {
            Algo::Ed25519 => {
                let pkey = PKey::generate_ed25519()?;
                body.push(22);
                let oid = [0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01];
                body.push(9);
                body.extend_from_slice(&oid);
                let mut point = vec![0x40];
                point.extend(pkey.raw_public_key()?);
                body.extend(mpi(&point));
                pkey
            }
            Algo::Rsa(bits) => {
                let rsa = Rsa::generate(bits)?;
                body.push(1);
                body.extend(mpi(&rsa.n().to_vec()));
                body.extend(mpi(&rsa.e().to_vec()));
                PKey::from_rsa(rsa)?
            }
        };
        Ok(Self {
            pkey,
            algo,
            created,
            body,
        })
    }

    /// The public key packet body.
    pub fn public_body(&self) -> &[u8] {
        &self.body
    }

    /// The key framed for hashing: 0x99, a two-octet length, the body.
    pub fn hashed_form(&self) -> Vec<u8> {
        let mut out = vec![0x99];
        out.extend_from_slice(&u16::try_from(self.body.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    pub fn fingerprint(&self) -> [u8; 20] {
        let digest = openssl::hash::hash(MessageDigest::sha1(), &self.hashed_form()).map(|d| d.to_vec());
        digest
            .ok()
            .and_then(|d| <[u8; 20]>::try_from(d).ok())
            .unwrap_or([0; 20])
    }

    pub fn fingerprint_hex(&self) -> String {
        hex::encode_upper(self.fingerprint())
    }

    pub fn key_id(&self) -> [u8; 8] {
        let fpr = self.fingerprint();
        let mut id = [0; 8];
        id.copy_from_slice(fpr.get(12..).unwrap_or(&[0; 8]));
        id
    }

    fn pk_algo(&self) -> u8 {
        match self.algo {
            Algo::Ed25519 => 22,
            Algo::Rsa(_) => 1,
        }
    }

    /// Signs `data` (concatenated) as `sig` describes; returns the signature packet body.
    pub fn sign(&self, sig: &Sig, data: &[&[u8]]) -> anyhow::Result<Vec<u8>> {
        let hashed = encode_subpackets(&sig.hashed);
        let mut prefix = vec![4, sig.sig_type, self.pk_algo(), sig.hash];
        prefix.extend_from_slice(&u16::try_from(hashed.len()).context("hashed area")?.to_be_bytes());
        prefix.extend_from_slice(&hashed);
        let mut trailer = vec![4, 0xFF];
        trailer.extend_from_slice(&u32::try_from(prefix.len()).context("prefix")?.to_be_bytes());

        let md = digest(sig.hash)?;
        let mut hasher = Hasher::new(md)?;
        for part in data.iter().copied().chain([prefix.as_slice(), &trailer]) {
            hasher.update(part)?;
        }
        let hash = hasher.finish()?;
        let material = match self.algo {
            Algo::Ed25519 => {
                let raw = Signer::new_without_digest(&self.pkey)?.sign_oneshot_to_vec(&hash)?;
                let (r, s) = raw.split_at_checked(32).context("Ed25519 signature length")?;
                [mpi(r), mpi(s)].concat()
            }
            Algo::Rsa(_) => {
                let mut signer = Signer::new(md, &self.pkey)?;
                for part in data.iter().copied().chain([prefix.as_slice(), &trailer]) {
                    signer.update(part)?;
                }
                mpi(&signer.sign_to_vec()?)
            }
        };
        let unhashed = encode_subpackets(&sig.unhashed);
        let mut out = prefix;
        out.extend_from_slice(&u16::try_from(unhashed.len()).context("unhashed area")?.to_be_bytes());
        out.extend_from_slice(&unhashed);
        out.extend_from_slice(hash.get(..2).context("digest")?);
        out.extend_from_slice(&material);
        Ok(out)
    }

    /// The usual subpackets of a signature by this key made at `created`: creation time and
    /// issuer fingerprint hashed, issuer key ID unhashed, as GnuPG writes them.
    pub fn sig(&self, sig_type: u8, hash: u8, created: u32) -> Sig {
        Sig {
            sig_type,
            hash,
            hashed: vec![
                Subpacket::IssuerFingerprint(self.fingerprint()),
                Subpacket::Created(created),
            ],
            unhashed: vec![Subpacket::IssuerKeyId(self.key_id())],
        }
    }
}

/// A signature to make.
#[derive(Debug, Clone)]
pub struct Sig {
    pub sig_type: u8,
    pub hash: u8,
    pub hashed: Vec<Subpacket>,
    pub unhashed: Vec<Subpacket>,
}

impl Sig {
    pub fn with(mut self, sub: Subpacket) -> Self {
        self.hashed.push(sub);
        self
    }

    pub fn with_unhashed(mut self, sub: Subpacket) -> Self {
        self.unhashed.push(sub);
        self
    }
}

/// Signature subpackets (RFC 9580 §5.2.3.7).
#[derive(Debug, Clone)]
pub enum Subpacket {
    Created(u32),
    SigExpires(u32),
    KeyExpires(u32),
    KeyFlags(u8),
    IssuerKeyId([u8; 8]),
    IssuerFingerprint([u8; 20]),
    /// An embedded signature (the back-signature of a signing subkey), packet body.
    Embedded(Vec<u8>),
    Raw {
        kind: u8,
        critical: bool,
        body: Vec<u8>,
    },
}

fn encode_subpackets(subs: &[Subpacket]) -> Vec<u8> {
    let mut out = Vec::new();
    for sub in subs {
        let (kind, body): (u8, Vec<u8>) = match sub {
            Subpacket::Created(t) => (2, t.to_be_bytes().to_vec()),
            Subpacket::SigExpires(t) => (3, t.to_be_bytes().to_vec()),
            Subpacket::KeyExpires(t) => (9, t.to_be_bytes().to_vec()),
            Subpacket::KeyFlags(f) => (27, vec![*f]),
            Subpacket::IssuerKeyId(id) => (16, id.to_vec()),
            Subpacket::IssuerFingerprint(fpr) => (33, [&[4u8][..], fpr].concat()),
            Subpacket::Embedded(sig) => (32, sig.clone()),
            Subpacket::Raw { kind, critical, body } => (kind | if *critical { 0x80 } else { 0 }, body.clone()),
        };
        let len = body.len() + 1;
        match u8::try_from(len) {
            Ok(short) if short < 192 => out.push(short),
            _ => {
                out.push(0xFF);
                out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
            }
        }
        out.push(kind);
        out.extend_from_slice(&body);
    }
    out
}

/// A new-format packet: tag, length, body.
pub fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xC0 | tag];
    let len = body.len();
    if len < 192 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else if len < 8384 {
        let n = len - 192;
        out.push(u8::try_from((n >> 8) + 192).unwrap_or(0));
        out.push(u8::try_from(n & 0xFF).unwrap_or(0));
    } else {
        out.push(0xFF);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// A user ID framed for hashing: 0xB4, a four-octet length, the text.
pub fn user_id_hashed_form(uid: &str) -> Vec<u8> {
    let mut out = vec![0xB4];
    out.extend_from_slice(&u32::try_from(uid.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(uid.as_bytes());
    out
}

/// CRC-24 of OpenPGP armor. Written again here rather than shared with the verifier: what
/// tests write must not inherit the verifier's mistakes.
pub fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0x00B7_04CE;
    for &byte in data {
        crc ^= u32::from(byte) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}

/// ASCII armor of `data` as `-----BEGIN PGP {kind}-----` with 64-column lines and a CRC.
pub fn armor(kind: &str, data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.encode(data);
    let mut out = format!("-----BEGIN PGP {kind}-----\n\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    let crc = crc24(data).to_be_bytes();
    out.push('=');
    out.push_str(&b64.encode(crc.get(1..).unwrap_or_default()));
    out.push_str(&format!("\n-----END PGP {kind}-----\n"));
    out
}

/// The bytes a cleartext signature covers: trailing blanks dropped, lines joined by CRLF.
pub fn canonical_text(text: &str) -> Vec<u8> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .map(|line| line.trim_end_matches([' ', '\t', '\r']))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

/// A cleartext-signed message: `text` dash-escaped under `Hash: {hashes}`, then the armored
/// `signatures` (concatenated signature packets).
pub fn cleartext(text: &str, hashes: &str, signatures: &[u8]) -> String {
    let mut out = format!("-----BEGIN PGP SIGNED MESSAGE-----\nHash: {hashes}\n\n");
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        if line.starts_with('-') {
            out.push_str("- ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&armor("SIGNATURE", signatures));
    out
}

/// How a subkey is attached to its primary.
#[derive(Debug, Clone)]
pub struct Binding {
    pub flags: u8,
    /// Seconds after the subkey's creation it expires (0: never).
    pub expires_after: u32,
    /// Whether the subkey signs a back-signature (cross-certification) into the binding.
    pub back_signature: bool,
    /// Whether the binding signature is present at all.
    pub bound: bool,
    /// Whether the primary has revoked the subkey.
    pub revoked: bool,
    pub hash: u8,
    pub created: u32,
}

impl Binding {
    /// A signing subkey bound and cross-certified the way GnuPG does it, at `created`.
    pub fn signing(created: u32) -> Self {
        Self {
            flags: FLAG_SIGN,
            expires_after: 0,
            back_signature: true,
            bound: true,
            revoked: false,
            hash: SHA256,
            created,
        }
    }
}

/// How the primary key certifies itself.
#[derive(Debug, Clone)]
pub struct SelfSig {
    pub flags: u8,
    pub expires_after: u32,
    pub hash: u8,
    pub created: u32,
    pub revoked: bool,
}

impl SelfSig {
    pub fn new(flags: u8, created: u32) -> Self {
        Self {
            flags,
            expires_after: 0,
            hash: SHA256,
            created,
            revoked: false,
        }
    }
}

/// A transferable public key: the primary, one user ID, its subkeys, each attached as told.
pub fn certificate(
    primary: &SecretKey,
    uid: &str,
    self_sig: &SelfSig,
    subkeys: &[(&SecretKey, Binding)],
) -> anyhow::Result<Vec<u8>> {
    let pk = primary.hashed_form();
    let mut out = packet(TAG_PUBLIC_KEY, primary.public_body());
    if self_sig.revoked {
        let sig = primary.sig(SIG_KEY_REVOCATION, self_sig.hash, self_sig.created);
        out.extend(packet(TAG_SIGNATURE, &primary.sign(&sig, &[&pk])?));
    }
    out.extend(packet(TAG_USER_ID, uid.as_bytes()));
    let mut sig = primary
        .sig(SIG_POSITIVE_CERT, self_sig.hash, self_sig.created)
        .with(Subpacket::KeyFlags(self_sig.flags));
    if self_sig.expires_after != 0 {
        sig = sig.with(Subpacket::KeyExpires(self_sig.expires_after));
    }
    out.extend(packet(
        TAG_SIGNATURE,
        &primary.sign(&sig, &[&pk, &user_id_hashed_form(uid)])?,
    ));
    for (subkey, binding) in subkeys {
        out.extend(packet(TAG_PUBLIC_SUBKEY, subkey.public_body()));
        let sk = subkey.hashed_form();
        if binding.bound {
            let mut sig = primary
                .sig(SIG_SUBKEY_BINDING, binding.hash, binding.created)
                .with(Subpacket::KeyFlags(binding.flags));
            if binding.expires_after != 0 {
                sig = sig.with(Subpacket::KeyExpires(binding.expires_after));
            }
            if binding.back_signature {
                let back = subkey.sign(
                    &subkey.sig(SIG_PRIMARY_BINDING, binding.hash, binding.created),
                    &[&pk, &sk],
                )?;
                sig = sig.with(Subpacket::Embedded(back));
            }
            out.extend(packet(TAG_SIGNATURE, &primary.sign(&sig, &[&pk, &sk])?));
        }
        if binding.revoked {
            let sig = primary.sig(SIG_SUBKEY_REVOCATION, binding.hash, binding.created + 60);
            out.extend(packet(TAG_SIGNATURE, &primary.sign(&sig, &[&pk, &sk])?));
        }
    }
    Ok(out)
}

/// A text signature over `text` as a cleartext message carries it.
pub fn sign_text(key: &SecretKey, sig: &Sig, text: &str) -> anyhow::Result<Vec<u8>> {
    Ok(packet(TAG_SIGNATURE, &key.sign(sig, &[&canonical_text(text)])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpis_drop_leading_zeros_and_count_bits() {
        assert_eq!(mpi(&[0, 0x01, 0xFF]), vec![0, 9, 0x01, 0xFF]);
        assert_eq!(mpi(&[0x40, 1]), vec![0, 15, 0x40, 1]);
        assert_eq!(mpi(&[]), vec![0, 0]);
    }

    #[test]
    fn canonical_text_strips_blanks_and_uses_crlf() {
        assert_eq!(canonical_text("a \t\nb\r\n"), b"a\r\nb".to_vec());
    }
}
