//! AWS Signature Version 4 for S3 requests, on OpenSSL (pure: no clock, no network).
//!
//! The payload is always hashed (`x-amz-content-sha256` is the SHA-256 of the body, never
//! `UNSIGNED-PAYLOAD`): the server refuses a body that changed on the way.

use openssl::hash::{MessageDigest, hash};
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::{Credentials, Error};

/// The SHA-256 of an empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What gets signed: the request line, its query, the headers to sign and the body's hash.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent, already encoded (`/bucket/key%20with%20space`).
    pub path: &'a str,
    /// Query parameters, unencoded; they are encoded and sorted here.
    pub query: &'a [(&'a str, &'a str)],
    /// `host` and any other header to sign (`range`, …); lowercase names.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload_sha256: &'a str,
}

/// `x-amz-date` (`20130524T000000Z`) for `secs` since the epoch.
pub fn amz_date(secs: i64) -> Result<String, Error> {
    let ts = jiff::Timestamp::from_second(secs).map_err(|_| Error::Clock)?;
    Ok(ts.strftime("%Y%m%dT%H%M%SZ").to_string())
}

/// Percent-encodes `text` as SigV4 wants: unreserved characters stay, everything else is
/// `%XX` (uppercase); `/` stays too when `keep_slash` (paths), not in query values.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The query string, encoded and sorted by name then value, as both signed and sent.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
    let key = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.update(data)?;
    Ok(signer.sign_to_vec()?)
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> Result<String, Error> {
    Ok(hex::encode(hash(MessageDigest::sha256(), data)?))
}

/// The `Authorization` header for `request` at `amz_date` in `region`.
pub fn authorization(
    request: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    amz_date: &str,
) -> Result<String, Error> {
    let date = amz_date.get(..8).ok_or(Error::Clock)?;
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let signed_headers = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        request.path,
        canonical_query(request.query),
        request.payload_sha256
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())?
    );
    let secret = format!("AWS4{}", credentials.secret_access_key.expose());
    let mut key = hmac(secret.as_bytes(), date.as_bytes())?;
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes())?;
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes())?);
    Ok(format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}",
        credentials.access_key_id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(uri_encode("a b/ü~*", true), "a%20b/%C3%BC~%2A");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(
            canonical_query(&[("prefix", "x/y"), ("list-type", "2"), ("continuation-token", "a+b=")]),
            "continuation-token=a%2Bb%3D&list-type=2&prefix=x%2Fy"
        );
        assert_eq!(amz_date(1_369_353_600).unwrap(), "20130524T000000Z");
        assert_eq!(sha256_hex(b"").unwrap(), EMPTY_SHA256);
    }
}
