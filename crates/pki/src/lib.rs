//! Cluster certificates, on OpenSSL, as CloudNativePG issues them: ECDSA P-256 keys, a CA per
//! cluster (CN = cluster, OU = namespace), a server certificate for the cluster's services and
//! client certificates (`streaming_replica`, `cnpg_pooler_pgbouncer`), 90 days by default and
//! valid from five minutes ago. Renewal is a decision made from a certificate and a clock,
//! and a renewed certificate keeps its key pair.
//!
//! No client and no runtime: the operator stores what this crate makes in Secrets, the instance
//! manager and the tests read it back.

use std::fmt;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Name, X509NameBuilder, X509Ref};

/// Certificate lifetime when nothing else is configured (`CERTIFICATE_DURATION`).
pub const DEFAULT_VALIDITY_DAYS: u32 = 90;
/// A certificate this close to its end is renewed (`EXPIRING_CHECK_THRESHOLD`).
pub const DEFAULT_RENEWAL_THRESHOLD_DAYS: u32 = 7;
/// How far in the past a new certificate starts, for clocks slightly behind.
const BACKDATE_SECONDS: i64 = 300;
const DAY: i64 = 86_400;

/// A failed certificate operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {0}")]
    OpenSsl(&'static str, #[source] openssl::error::ErrorStack),
    #[error("the certificate is not signed by this CA")]
    NotIssuedByCa,
    #[error("the private key does not match the certificate")]
    KeyMismatch,
}

fn ssl(what: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> Error {
    move |e| Error::OpenSsl(what, e)
}

/// A private key in PEM: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// The PEM text, for writing to a Secret or a 0600 file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for PrivateKeyPem {
    /// A key read from a Secret.
    fn from(pem: String) -> Self {
        Self(pem)
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem([REDACTED])")
    }
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub certificate: String,
    pub key: PrivateKeyPem,
}

fn new_key() -> Result<PKey<Private>, Error> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ssl("choose P-256"))?;
    let key = EcKey::generate(&group).map_err(ssl("generate an EC key"))?;
    PKey::from_ec_key(key).map_err(ssl("wrap the EC key"))
}

fn serial() -> Result<Asn1Integer, Error> {
    let mut n = BigNum::new().map_err(ssl("allocate a serial"))?;
    n.rand(128, MsbOption::MAYBE_ZERO, false)
        .map_err(ssl("draw a serial"))?;
    n.to_asn1_integer().map_err(ssl("encode a serial"))
}

fn name(common_name: &str, unit: Option<&str>) -> Result<X509Name, Error> {
    let mut b = X509NameBuilder::new().map_err(ssl("build a name"))?;
    b.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .map_err(ssl("set a common name"))?;
    if let Some(unit) = unit {
        b.append_entry_by_nid(Nid::ORGANIZATIONALUNITNAME, unit)
            .map_err(ssl("set an organizational unit"))?;
    }
    Ok(b.build())
}

fn private_pem(key: &PKey<Private>) -> Result<PrivateKeyPem, Error> {
    let ec = key.ec_key().map_err(ssl("read the EC key"))?;
    let pem = ec.private_key_to_pem().map_err(ssl("encode the key"))?;
    Ok(PrivateKeyPem(String::from_utf8_lossy(&pem).into_owned()))
}

fn cert_pem(cert: &X509Ref) -> Result<String, Error> {
    Ok(String::from_utf8_lossy(&cert.to_pem().map_err(ssl("encode the certificate"))?).into_owned())
}

/// What a leaf is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

/// A certificate authority: its certificate and key.
pub struct Authority {
    certificate: X509,
    key: PKey<Private>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("subject", &self.certificate.subject_name())
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A new self-signed CA for `cluster` in `namespace`, valid from `now` for `days`.
    pub fn generate(cluster: &str, namespace: &str, now: i64, days: u32) -> Result<Self, Error> {
        let key = new_key()?;
        let subject = name(cluster, Some(namespace))?;
        let mut b = X509::builder().map_err(ssl("start a certificate"))?;
        b.set_version(2).map_err(ssl("set the version"))?;
        let number = serial()?;
        b.set_serial_number(&number).map_err(ssl("set the serial"))?;
        b.set_subject_name(&subject).map_err(ssl("set the subject"))?;
        b.set_issuer_name(&subject).map_err(ssl("set the issuer"))?;
        b.set_pubkey(&key).map_err(ssl("set the public key"))?;
        let (from, to) = validity(now, days)?;
        b.set_not_before(&from).map_err(ssl("set notBefore"))?;
        b.set_not_after(&to).map_err(ssl("set notAfter"))?;
        let constraints = BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .map_err(ssl("build basic constraints"))?;
        b.append_extension(constraints).map_err(ssl("add basic constraints"))?;
        let usage = KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .map_err(ssl("build key usage"))?;
        b.append_extension(usage).map_err(ssl("add key usage"))?;
        b.sign(&key, MessageDigest::sha256()).map_err(ssl("sign the CA"))?;
        Ok(Self {
            certificate: b.build(),
            key,
        })
    }

    /// A CA read back from its Secret (`ca.crt`, `ca.key`).
    pub fn from_pem(certificate: &str, key: &str) -> Result<Self, Error> {
        let certificate = X509::from_pem(certificate.as_bytes()).map_err(ssl("read the CA certificate"))?;
        let key = PKey::private_key_from_pem(key.as_bytes()).map_err(ssl("read the CA key"))?;
        let public = certificate.public_key().map_err(ssl("read the CA public key"))?;
        if !public.public_eq(&key) {
            return Err(Error::KeyMismatch);
        }
        Ok(Self { certificate, key })
    }

    /// The CA as a certificate/key pair, for its Secret.
    pub fn pair(&self) -> Result<Pair, Error> {
        Ok(Pair {
            certificate: cert_pem(&self.certificate)?,
            key: private_pem(&self.key)?,
        })
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> Result<String, Error> {
        cert_pem(&self.certificate)
    }

    /// A new leaf with a new key: `common_name`, and for servers the DNS names (IP addresses
    /// among them become IP SANs).
    pub fn issue(
        &self,
        common_name: &str,
        usage: Usage,
        dns_names: &[String],
        now: i64,
        days: u32,
    ) -> Result<Pair, Error> {
        let key = new_key()?;
        let certificate = self.sign_leaf(&key, common_name, usage, dns_names, now, days)?;
        Ok(Pair {
            certificate: cert_pem(&certificate)?,
            key: private_pem(&key)?,
        })
    }

    /// The same leaf again, same key pair, new serial and validity, names as given.
    pub fn renew(
        &self,
        existing: &Pair,
        usage: Usage,
        dns_names: &[String],
        now: i64,
        days: u32,
    ) -> Result<Pair, Error> {
        let old = X509::from_pem(existing.certificate.as_bytes()).map_err(ssl("read the certificate"))?;
        let key = PKey::private_key_from_pem(existing.key.expose().as_bytes()).map_err(ssl("read the key"))?;
        if !old.public_key().map_err(ssl("read the public key"))?.public_eq(&key) {
            return Err(Error::KeyMismatch);
        }
        let common_name = old
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok())
            .unwrap_or_default();
        let certificate = self.sign_leaf(&key, &common_name, usage, dns_names, now, days)?;
        Ok(Pair {
            certificate: cert_pem(&certificate)?,
            key: existing.key.clone(),
        })
    }

    fn sign_leaf(
        &self,
        key: &PKey<Private>,
        common_name: &str,
        usage: Usage,
        dns_names: &[String],
        now: i64,
        days: u32,
    ) -> Result<X509, Error> {
        let mut b = X509::builder().map_err(ssl("start a certificate"))?;
        b.set_version(2).map_err(ssl("set the version"))?;
        let number = serial()?;
        b.set_serial_number(&number).map_err(ssl("set the serial"))?;
        let subject = name(common_name, None)?;
        b.set_subject_name(&subject).map_err(ssl("set the subject"))?;
        b.set_issuer_name(self.certificate.subject_name())
            .map_err(ssl("set the issuer"))?;
        b.set_pubkey(key).map_err(ssl("set the public key"))?;
        let (from, to) = validity(now, days)?;
        b.set_not_before(&from).map_err(ssl("set notBefore"))?;
        b.set_not_after(&to).map_err(ssl("set notAfter"))?;
        let mut key_usage = KeyUsage::new();
        key_usage.critical().digital_signature().key_agreement();
        let mut extended = ExtendedKeyUsage::new();
        match usage {
            Usage::Server => {
                key_usage.key_encipherment();
                extended.server_auth();
            }
            Usage::Client => {
                extended.client_auth();
            }
        }
        b.append_extension(key_usage.build().map_err(ssl("build key usage"))?)
            .map_err(ssl("add key usage"))?;
        b.append_extension(extended.build().map_err(ssl("build extended key usage"))?)
            .map_err(ssl("add extended key usage"))?;
        if usage == Usage::Server {
            let mut san = SubjectAlternativeName::new();
            san.dns(common_name);
            for entry in dns_names.iter().filter(|n| n.as_str() != common_name) {
                if entry.parse::<std::net::IpAddr>().is_ok() {
                    san.ip(entry);
                } else {
                    san.dns(entry);
                }
            }
            let san = san
                .build(&b.x509v3_context(Some(&self.certificate), None))
                .map_err(ssl("build the SANs"))?;
            b.append_extension(san).map_err(ssl("add the SANs"))?;
        }
        b.sign(&self.key, MessageDigest::sha256())
            .map_err(ssl("sign the certificate"))?;
        Ok(b.build())
    }
}

fn validity(now: i64, days: u32) -> Result<(Asn1Time, Asn1Time), Error> {
    let from = Asn1Time::from_unix(now - BACKDATE_SECONDS).map_err(ssl("compute notBefore"))?;
    let to = Asn1Time::from_unix(now + i64::from(days) * DAY).map_err(ssl("compute notAfter"))?;
    Ok((from, to))
}

/// The names a cluster's server certificate carries: for each of its services `<svc>`,
/// `<svc>.<ns>`, `<svc>.<ns>.svc` and `<svc>.<ns>.svc.<domain>`, then the user's extra names.
pub fn server_names(cluster: &str, namespace: &str, domain: &str, services: &[&str], extra: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for suffix in services {
        let service = format!("{cluster}-{suffix}");
        names.push(service.clone());
        names.push(format!("{service}.{namespace}"));
        names.push(format!("{service}.{namespace}.svc"));
        names.push(format!("{service}.{namespace}.svc.{domain}"));
    }
    names.extend(extra.iter().cloned());
    names
}

/// Whether a certificate must be renewed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Nothing to do.
    Valid,
    /// Within the threshold of its end (or past it).
    Expiring,
    /// Its validity has not started.
    NotYetValid,
    /// Its names are not the expected ones.
    NamesChanged,
}

fn seconds_until(time: &openssl::asn1::Asn1TimeRef, now: i64) -> Result<i64, Error> {
    let epoch = Asn1Time::from_unix(now).map_err(ssl("encode the clock"))?;
    let diff = epoch.diff(time).map_err(ssl("compare times"))?;
    Ok(i64::from(diff.days) * DAY + i64::from(diff.secs))
}

/// The renewal decision for `certificate` at `now`; `expected_names` (servers only) are
/// compared with its SANs, order ignored.
pub fn renewal(
    certificate: &str,
    now: i64,
    threshold_days: u32,
    expected_names: Option<&[String]>,
) -> Result<Renewal, Error> {
    let cert = X509::from_pem(certificate.as_bytes()).map_err(ssl("read the certificate"))?;
    if seconds_until(cert.not_before(), now)? > 0 {
        return Ok(Renewal::NotYetValid);
    }
    if seconds_until(cert.not_after(), now)? < i64::from(threshold_days) * DAY {
        return Ok(Renewal::Expiring);
    }
    if let Some(expected) = expected_names {
        let mut have = names_of(&cert);
        let mut want: Vec<String> = expected.to_vec();
        if let Some(cn) = common_name(&cert)
            && !want.contains(&cn)
        {
            want.push(cn);
        }
        have.sort();
        want.sort();
        want.dedup();
        if have != want {
            return Ok(Renewal::NamesChanged);
        }
    }
    Ok(Renewal::Valid)
}

fn common_name(cert: &X509Ref) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// The DNS and IP SANs of a certificate.
pub fn names_of(cert: &X509Ref) -> Vec<String> {
    cert.subject_alt_names()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            n.dnsname().map(str::to_owned).or_else(|| {
                n.ipaddress().and_then(|ip| match ip.len() {
                    4 => <[u8; 4]>::try_from(ip)
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(ip)
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    _ => None,
                })
            })
        })
        .collect()
}

/// The SHA-256 of a certificate's public key (DER), hex: how the operator's client certificate
/// is pinned in `status.operatorCertificateFingerprint`.
pub fn public_key_fingerprint(certificate: &str) -> Result<String, Error> {
    let cert = X509::from_pem(certificate.as_bytes()).map_err(ssl("read the certificate"))?;
    let der = cert
        .public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(ssl("encode the public key"))?;
    let digest = openssl::hash::hash(MessageDigest::sha256(), &der).map_err(ssl("hash the public key"))?;
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Does `certificate` chain to `ca` (signature only; times are checked by [`renewal`])?
pub fn issued_by(certificate: &str, ca: &Authority) -> Result<(), Error> {
    let cert = X509::from_pem(certificate.as_bytes()).map_err(ssl("read the certificate"))?;
    let ca_key = ca.certificate.public_key().map_err(ssl("read the CA public key"))?;
    if cert.verify(&ca_key).map_err(ssl("verify the signature"))? {
        Ok(())
    } else {
        Err(Error::NotIssuedByCa)
    }
}
