//! Password verifiers computed here, so a cleartext password never reaches PostgreSQL (where a
//! statement log or an error message could show it): SCRAM-SHA-256 from PostgreSQL 14 on (RFC
//! 5802/7677, 4096 iterations, 16-byte salt from the OS CSPRNG), md5 before.
//!
//! PostgreSQL normalizes passwords with SASLprep before hashing; ours are ASCII (the operator
//! generates letters and digits), for which SASLprep changes nothing. A user-supplied password
//! with characters SASLprep would rewrite needs `cnpg.io/passwordPassthrough`.

use base64::Engine as _;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// PostgreSQL's default SCRAM iteration count.
pub const ITERATIONS: usize = 4096;

/// A failed computation (only OpenSSL itself can fail here).
#[derive(Debug, thiserror::Error)]
#[error("failed to compute a password verifier")]
pub struct Error(#[source] openssl::error::ErrorStack);

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
    let key = PKey::hmac(key).map_err(Error)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(Error)?;
    signer.update(data).map_err(Error)?;
    signer.sign_to_vec().map_err(Error)
}

/// The salted password: PBKDF2-HMAC-SHA-256.
pub fn salted_password(password: &str, salt: &[u8], iterations: usize) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    openssl::pkcs5::pbkdf2_hmac(password.as_bytes(), salt, iterations, MessageDigest::sha256(), &mut out)
        .map_err(Error)?;
    Ok(out)
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password` with `salt`.
pub fn scram_with_salt(password: &str, salt: &[u8], iterations: usize) -> Result<String, Error> {
    let salted = salted_password(password, salt, iterations)?;
    let client_key = hmac(&salted, b"Client Key")?;
    let stored_key = hash(MessageDigest::sha256(), &client_key).map_err(Error)?;
    let server_key = hmac(&salted, b"Server Key")?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64(salt),
        b64(&stored_key),
        b64(&server_key)
    ))
}

/// A SCRAM-SHA-256 verifier with a fresh random salt.
pub fn scram(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(Error)?;
    scram_with_salt(password, &salt, ITERATIONS)
}

/// PostgreSQL's md5 verifier: `md5` + hex(md5(password + user)).
pub fn md5(password: &str, user: &str) -> Result<String, Error> {
    let digest = hash(MessageDigest::md5(), format!("{password}{user}").as_bytes()).map_err(Error)?;
    Ok(format!(
        "md5{}",
        digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The verifier a role gets on this major.
pub fn verifier(password: &str, user: &str, major: u32) -> Result<String, Error> {
    if major >= 14 {
        scram(password)
    } else {
        md5(password, user)
    }
}

/// HMAC-SHA-256, for tests that replay a SCRAM exchange against a verifier.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
    hmac(key, data)
}

/// A cleartext password read from a Secret: never printed, compared or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The cleartext, for computing a verifier or writing a 0600 file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// Whether `stored` (a role's `rolpassword`) is a verifier of `password`: a SCRAM verifier is
/// recomputed with its own salt and iteration count, an md5 one directly. Lets the instance
/// manager leave a role alone when its password is already right, with no state of its own.
pub fn matches(password: &str, user: &str, stored: &str) -> Result<bool, Error> {
    if stored.starts_with("md5") {
        return Ok(md5(password, user)? == stored);
    }
    let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") else {
        return Ok(false);
    };
    let Some((iterations, rest)) = rest.split_once(':') else {
        return Ok(false);
    };
    let Some((salt, _)) = rest.split_once('$') else {
        return Ok(false);
    };
    let (Ok(iterations), Ok(salt)) = (
        iterations.parse::<usize>(),
        base64::engine::general_purpose::STANDARD.decode(salt),
    ) else {
        return Ok(false);
    };
    // The same salt and count give the same verifier: compare the whole string.
    Ok(scram_with_salt(password, &salt, iterations)? == stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_matches_its_password_only() {
        let v = scram("right horse").unwrap();
        assert!(matches("right horse", "app", &v).unwrap());
        assert!(!matches("wrong horse", "app", &v).unwrap());
        let m = md5("pw", "app").unwrap();
        assert!(matches("pw", "app", &m).unwrap());
        assert!(!matches("pw", "other", &m).unwrap());
        assert!(!matches("pw", "app", "SCRAM-SHA-256$garbage").unwrap());
        assert!(!matches("pw", "app", "").unwrap());
        assert_eq!(format!("{:?}", Password::new("s3cret".into())), "Password([REDACTED])");
    }
}
