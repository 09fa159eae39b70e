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

/// The iteration counts a stored SCRAM verifier may carry for [`matches`] to recompute it: a
/// role can set its own password to any pre-hashed string, so the count is outside input.
/// PostgreSQL's default is 4096; beyond 100,000 a recomputation would stall the instance
/// manager's pass, and the verifier is simply replaced.
pub const CHECKED_ITERATIONS: std::ops::RangeInclusive<usize> = 1..=100_000;

/// The salt lengths [`matches`] accepts, in bytes (PostgreSQL writes 16).
pub const CHECKED_SALT_BYTES: std::ops::RangeInclusive<usize> = 8..=64;

/// Whether `stored` (a role's `rolpassword`) is a verifier of `password`: a SCRAM verifier is
/// recomputed with its own salt and iteration count, an md5 one directly. Lets the instance
/// manager leave a role alone when its password is already right, with no state of its own.
///
/// `stored` is written by the role itself as often as by us, so anything unusual in it (an
/// iteration count out of [`CHECKED_ITERATIONS`], a salt out of [`CHECKED_SALT_BYTES`], keys
/// that are not 32 bytes, a malformed string) is "does not match": the caller replaces it.
/// Never an error, never a panic, never a computation longer than the largest count allows.
pub fn matches(password: &str, user: &str, stored: &str) -> bool {
    if let Some(hex) = stored.strip_prefix("md5") {
        return hex.len() == 32 && md5(password, user).is_ok_and(|mine| mine == stored);
    }
    let Some(parameters) = parse_scram(stored) else {
        return false;
    };
    // The same salt and count give the same verifier: compare the whole string.
    scram_with_salt(password, &parameters.salt, parameters.iterations).is_ok_and(|mine| mine == stored)
}

struct ScramParameters {
    iterations: usize,
    salt: Vec<u8>,
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` with every part in range.
fn parse_scram(stored: &str) -> Option<ScramParameters> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    // Longest well-formed verifier: 6 digits, 64-byte salt, two 32-byte keys, in base64.
    if stored.len() > 256 {
        return None;
    }
    let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
    let (parameters, keys) = rest.split_once('$')?;
    let (iterations, salt) = parameters.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    if !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let iterations = iterations
        .parse::<usize>()
        .ok()
        .filter(|n| CHECKED_ITERATIONS.contains(n))?;
    let salt = b64(salt).filter(|s| CHECKED_SALT_BYTES.contains(&s.len()))?;
    for key in [stored_key, server_key] {
        if b64(key)?.len() != 32 {
            return None;
        }
    }
    Some(ScramParameters { iterations, salt })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_matches_its_password_only() {
        let v = scram("right horse").unwrap();
        assert!(matches("right horse", "app", &v));
        assert!(!matches("wrong horse", "app", &v));
        let m = md5("pw", "app").unwrap();
        assert!(matches("pw", "app", &m));
        assert!(!matches("pw", "other", &m));
        assert!(!matches("pw", "app", "SCRAM-SHA-256$garbage"));
        assert!(!matches("pw", "app", ""));
        assert_eq!(format!("{:?}", Password::new("s3cret".into())), "Password([REDACTED])");
    }

    /// A verifier a role stored itself, with `iterations` as written and a valid 16-byte salt.
    fn planted(iterations: &str, salt_bytes: usize, key_bytes: usize) -> String {
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            b64(salt_bytes),
            b64(key_bytes),
            b64(key_bytes)
        )
    }

    #[test]
    fn a_hostile_stored_verifier_is_a_mismatch_not_a_panic_or_a_stall() {
        // Each of these, before the bounds, panicked inside OpenSSL (counts beyond i32),
        // failed the whole pass (0) or ran PBKDF2 for minutes (i32::MAX).
        for iterations in [
            "4294967297",
            "2147483648",
            "2147483647",
            "100001",
            "0",
            "-1",
            "+4096",
            " 4096",
            "4096 ",
            "99999999999999999999999",
        ] {
            assert!(!matches("pw", "app", &planted(iterations, 16, 32)), "{iterations}");
        }
        for (salt, key) in [(0, 32), (7, 32), (65, 32), (16, 31), (16, 33), (16, 0)] {
            assert!(
                !matches("pw", "app", &planted("4096", salt, key)),
                "salt {salt} key {key}"
            );
        }
        for stored in [
            "md5",
            "md5zz",
            "SCRAM-SHA-256$4096:AAAA",
            "SCRAM-SHA-256$4096:!!!$a:b",
            &"A".repeat(100_000),
        ] {
            assert!(!matches("pw", "app", stored), "{stored:.40}");
        }
        // The edges of the range still compare: a verifier made with them matches.
        for iterations in [*CHECKED_ITERATIONS.start(), *CHECKED_ITERATIONS.end()] {
            for salt in [*CHECKED_SALT_BYTES.start(), *CHECKED_SALT_BYTES.end()] {
                let v = scram_with_salt("pw", &vec![1u8; salt], iterations).unwrap();
                assert!(matches("pw", "app", &v), "{v}");
            }
        }
    }
}
