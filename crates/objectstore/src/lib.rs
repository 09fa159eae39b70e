//! S3-compatible object storage, the way backups use it: put, get, head, list and delete of
//! whole objects in one bucket, multipart uploads and streamed reads for base backups, over HTTPS only (the system's roots plus an endpoint CA),
//! path-style addressing, every request signed with AWS Signature Version 4 on OpenSSL and
//! every body hashed into its signature. A single-part object read back is checked against
//! its ETag (its MD5); a write is checked the same way before it counts as stored.
//!
//! Our own client rather than a general-purpose crate: those bring rustls and aws-lc or ring,
//! a second crypto stack next to OpenSSL.

pub mod list;
pub mod sigv4;

use std::time::Duration;

use openssl::hash::{MessageDigest, hash};

/// A secret (an access key's secret, a session token): its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The credentials requests are signed with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// Where objects live and how to reach them.
#[derive(Debug, Clone)]
pub struct Config {
    /// `https://host[:port]`: the S3 endpoint (plain HTTP is refused).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub credentials: Credentials,
    /// PEM of a CA to trust for the endpoint, beside the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// An object as a listing or a `HEAD` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Without quotes; the MD5 of a single-part object's bytes.
    pub etag: Option<String>,
}

/// A request to the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("endpoint `{0}` is not an https://host[:port] URL")]
    Endpoint(String),
    #[error("the endpoint CA is not PEM")]
    Ca(#[source] reqwest::Error),
    #[error("failed to set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{method} {key}: the store could not be reached")]
    Request {
        method: &'static str,
        key: String,
        source: reqwest::Error,
    },
    #[error("{method} {key}: the store answered {status} {code}: {message}")]
    Status {
        method: &'static str,
        key: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{key}: {problem}")]
    Integrity { key: String, problem: String },
    #[error("listing {prefix}: {problem}")]
    Listing { prefix: String, problem: String },
    #[error("the clock is before 1970 or after 9999")]
    Clock,
    #[error("OpenSSL failed")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// One bucket of an S3-compatible store.
#[derive(Debug, Clone)]
pub struct Store {
    client: reqwest::Client,
    config: Config,
    host: String,
    page_size: u32,
    /// `x-amz-server-side-encryption` for new objects (`AES256`, `aws:kms`).
    encryption: Option<String>,
}

/// The text of the first `<name>` element of an S3 XML document (unescaped), if any.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let (_, rest) = body.split_once(open.as_str())?;
    let (value, _) = rest.split_once(&format!("</{name}>"))?;
    Some(quick_xml::escape::unescape(value).map_or_else(|_| value.to_owned(), |v| v.into_owned()))
}

/// The S3 error document's code and message, when the body is one.
fn error_fields(body: &str) -> (String, String) {
    let field = |name: &str| xml_field(body, name).unwrap_or_default();
    (field("Code"), field("Message"))
}

fn md5_hex(data: &[u8]) -> Result<String, Error> {
    Ok(hex::encode(hash(MessageDigest::md5(), data)?))
}

fn etag_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|e| e.trim_matches('"').to_owned())
}

/// The ETag of a response when it is the MD5 of the bytes: not for objects encrypted with
/// KMS keys, whose ETag is something else.
fn checkable_etag(response: &reqwest::Response) -> Option<String> {
    let kms = response
        .headers()
        .get("x-amz-server-side-encryption")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("aws:kms"));
    if kms { None } else { etag_of(response) }
}

/// `Content-MD5`: the MD5 (hex) in base64, which the store checks the body against.
fn content_md5(md5_hex: &str) -> Result<String, Error> {
    let raw = hex::decode(md5_hex).map_err(|_| Error::Integrity {
        key: String::new(),
        problem: "an MD5 that is not hex".into(),
    })?;
    Ok(openssl::base64::encode_block(&raw))
}

/// Whether `etag` is the plain MD5 a single-part upload gets (multipart ones end in `-N`).
fn is_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Store {
    pub fn new(config: Config) -> Result<Self, Error> {
        let host = config
            .endpoint
            .strip_prefix("https://")
            .map(|h| h.trim_end_matches('/'))
            .filter(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@']))
            .ok_or_else(|| Error::Endpoint(config.endpoint.clone()))?
            .to_owned();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(120))
            .https_only(true)
            .user_agent(concat!("cnpg-rs/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).map_err(Error::Ca)?);
        }
        Ok(Self {
            client: builder.build().map_err(Error::Client)?,
            config,
            host,
            page_size: 1000,
            encryption: None,
        })
    }

    /// Lists at most `n` objects per request (the default is S3's 1000).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Has the store encrypt the objects it writes (`AES256` or `aws:kms`), as barman's
    /// `encryption` option asks.
    pub fn with_encryption(mut self, encryption: Option<String>) -> Self {
        self.encryption = encryption;
        self
    }

    /// Headers a new object's first request carries: its server-side encryption.
    fn create_headers(&self) -> Vec<(&'static str, String)> {
        self.encryption
            .iter()
            .map(|e| ("x-amz-server-side-encryption", e.clone()))
            .collect()
    }

    /// Sends one signed request for `key` (empty: the bucket itself).
    async fn send(
        &self,
        method: &'static str,
        key: &str,
        query: &[(&str, &str)],
        body: impl Into<bytes::Bytes>,
    ) -> Result<reqwest::Response, Error> {
        self.send_with(method, key, query, &[], body).await
    }

    /// [`Self::send`] with extra headers, signed with the rest.
    async fn send_with(
        &self,
        method: &'static str,
        key: &str,
        query: &[(&str, &str)],
        extra: &[(&'static str, String)],
        body: impl Into<bytes::Bytes>,
    ) -> Result<reqwest::Response, Error> {
        let body: bytes::Bytes = body.into();
        let path = format!(
            "/{}/{}",
            sigv4::uri_encode(&self.config.bucket, false),
            sigv4::uri_encode(key, true)
        );
        let payload = sigv4::sha256_hex(&body)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::Clock)?;
        let date = sigv4::amz_date(i64::try_from(now.as_secs()).map_err(|_| Error::Clock)?)?;
        let token = self.config.credentials.session_token.as_ref().map(Secret::expose);
        let mut headers = vec![
            ("host", self.host.as_str()),
            ("x-amz-content-sha256", payload.as_str()),
            ("x-amz-date", date.as_str()),
        ];
        if let Some(token) = token {
            headers.push(("x-amz-security-token", token));
        }
        for (name, value) in extra {
            headers.push((name, value.as_str()));
        }
        headers.sort_by_key(|(name, _)| *name);
        let request = sigv4::Request {
            method,
            path: &path,
            query,
            headers: &headers,
            payload_sha256: &payload,
        };
        let authorization = sigv4::authorization(&request, &self.config.credentials, &self.config.region, &date)?;
        let query = sigv4::canonical_query(query);
        let url = if query.is_empty() {
            format!("https://{}{path}", self.host)
        } else {
            format!("https://{}{path}?{query}", self.host)
        };
        let method_value = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut builder = self
            .client
            .request(method_value, url)
            .header("authorization", authorization)
            .body(body);
        for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
            builder = builder.header(*name, *value);
        }
        builder.send().await.map_err(|source| Error::Request {
            method,
            key: key.to_owned(),
            source,
        })
    }

    /// The response if its status is a success (or, with `absent_ok`, a 404: None).
    async fn checked(
        &self,
        method: &'static str,
        key: &str,
        response: reqwest::Response,
        absent_ok: bool,
    ) -> Result<Option<reqwest::Response>, Error> {
        let status = response.status();
        if status.is_success() {
            return Ok(Some(response));
        }
        if absent_ok && status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = response.text().await.unwrap_or_default();
        let (code, message) = error_fields(&body);
        Err(Error::Status {
            method,
            key: key.to_owned(),
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// Stores `body` at `key`; returns once the store confirmed exactly these bytes.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), Error> {
        let md5 = md5_hex(&body)?;
        let mut headers = self.create_headers();
        headers.push(("content-md5", content_md5(&md5)?));
        let response = self.send_with("PUT", key, &[], &headers, body).await?;
        let response = self.checked("PUT", key, response, false).await?;
        let etag = response.as_ref().and_then(checkable_etag);
        match etag {
            Some(etag) if is_md5(&etag) && !etag.eq_ignore_ascii_case(&md5) => Err(Error::Integrity {
                key: key.to_owned(),
                problem: format!("the store confirmed MD5 {etag}, the bytes sent have {md5}"),
            }),
            _ => Ok(()),
        }
    }

    /// The bytes at `key`, or None when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let response = self.send("GET", key, &[], Vec::new()).await?;
        let Some(response) = self.checked("GET", key, response, true).await? else {
            return Ok(None);
        };
        let etag = checkable_etag(&response);
        let body = response.bytes().await.map_err(|source| Error::Request {
            method: "GET",
            key: key.to_owned(),
            source,
        })?;
        if let Some(etag) = etag.filter(|e| is_md5(e)) {
            let md5 = md5_hex(&body)?;
            if !etag.eq_ignore_ascii_case(&md5) {
                return Err(Error::Integrity {
                    key: key.to_owned(),
                    problem: format!("the bytes read have MD5 {md5}, the store says {etag}"),
                });
            }
        }
        Ok(Some(body.to_vec()))
    }

    /// What the store knows of `key`, or None when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        let response = self.send("HEAD", key, &[], Vec::new()).await?;
        let Some(response) = self.checked("HEAD", key, response, true).await? else {
            return Ok(None);
        };
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        Ok(Some(ObjectInfo {
            key: key.to_owned(),
            size: header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
            etag: header("etag").map(|e| e.trim_matches('"').to_owned()),
        }))
    }

    /// Every object whose key starts with `prefix`, in key order, across all pages.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let page_size = self.page_size.to_string();
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix), ("max-keys", page_size.as_str())];
            if let Some(token) = &token {
                query.push(("continuation-token", token.as_str()));
            }
            let response = self.send("GET", "", &query, Vec::new()).await?;
            let response = self.checked("GET", prefix, response, false).await?;
            let body = match response {
                Some(r) => r.bytes().await.map_err(|source| Error::Request {
                    method: "GET",
                    key: prefix.to_owned(),
                    source,
                })?,
                None => break,
            };
            let page = list::parse(&body).map_err(|problem| Error::Listing {
                prefix: prefix.to_owned(),
                problem,
            })?;
            out.extend(page.objects);
            match page.next {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                Some(_) => {
                    return Err(Error::Listing {
                        prefix: prefix.to_owned(),
                        problem: "the store repeated its continuation token".into(),
                    });
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Whether any object's key starts with `prefix` (one request, however many there are).
    pub async fn any_under(&self, prefix: &str) -> Result<bool, Error> {
        let query = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1")];
        let response = self.send("GET", "", &query, Vec::new()).await?;
        let body = self.body_of("GET", prefix, response).await?;
        let page = list::parse(body.as_bytes()).map_err(|problem| Error::Listing {
            prefix: prefix.to_owned(),
            problem,
        })?;
        Ok(!page.objects.is_empty())
    }

    /// Deletes `key` (no error when it was already gone).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let response = self.send("DELETE", key, &[], Vec::new()).await?;
        self.checked("DELETE", key, response, true).await?;
        Ok(())
    }

    /// Starts writing `key` in parts; nothing is visible at `key` until [`Upload::complete`].
    pub async fn start_upload(&self, key: &str) -> Result<Upload, Error> {
        let response = self
            .send_with("POST", key, &[("uploads", "")], &self.create_headers(), Vec::new())
            .await?;
        let body = self.body_of("POST", key, response).await?;
        let id = xml_field(&body, "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Integrity {
                key: key.to_owned(),
                problem: "the store started a multipart upload without an UploadId".into(),
            })?;
        Ok(Upload {
            store: self.clone(),
            key: key.to_owned(),
            id,
        })
    }

    /// A successful response's body as text (an S3 error document in a 200 is an error).
    async fn body_of(&self, method: &'static str, key: &str, response: reqwest::Response) -> Result<String, Error> {
        let response = self.checked(method, key, response, false).await?;
        let body = match response {
            Some(r) => r.text().await.map_err(|source| Error::Request {
                method,
                key: key.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        if body.contains("<Error>") {
            let (code, message) = error_fields(&body);
            return Err(Error::Status {
                method,
                key: key.to_owned(),
                status: 200,
                code,
                message,
            });
        }
        Ok(body)
    }

    /// The object at `key` as a stream of chunks, or None when there is no such object; when
    /// the stream ends, the bytes are checked against the ETag: the MD5 of a single-part
    /// object, or for a multipart one the MD5 of its parts' MD5s (the part sizes from the
    /// store).
    pub async fn get_stream(&self, key: &str) -> Result<Option<Download>, Error> {
        let response = self.send("GET", key, &[], Vec::new()).await?;
        let Some(response) = self.checked("GET", key, response, true).await? else {
            return Ok(None);
        };
        let etag = checkable_etag(&response);
        let check = match etag {
            Some(e) if is_md5(&e) => Some(Check::new(vec![u64::MAX], e)?),
            Some(e) => self
                .part_sizes(key, &e)
                .await?
                .map(|sizes| Check::new(sizes, e))
                .transpose()?,
            None => None,
        };
        Ok(Some(Download {
            key: key.to_owned(),
            response,
            check,
        }))
    }

    /// The sizes of the parts a multipart object (ETag `<md5>-<n>`) was written in, from
    /// `HEAD ?partNumber=i`; None when the store does not tell (then only TLS and, for gzip,
    /// its CRC guard the bytes).
    async fn part_sizes(&self, key: &str, etag: &str) -> Result<Option<Vec<u64>>, Error> {
        let Some(count) = etag
            .split_once('-')
            .filter(|(md5, _)| is_md5(md5))
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .filter(|n| (1..=10_000).contains(n))
        else {
            return Ok(None);
        };
        let mut sizes = Vec::new();
        for number in 1..=count {
            let text = number.to_string();
            let response = self
                .send("HEAD", key, &[("partNumber", text.as_str())], Vec::new())
                .await?;
            let Some(response) = self.checked("HEAD", key, response, true).await? else {
                return Ok(None);
            };
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
            if header("x-amz-mp-parts-count").and_then(|n| n.parse::<u32>().ok()) != Some(count) {
                return Ok(None);
            }
            match header("content-length").and_then(|v| v.parse().ok()) {
                Some(size) => sizes.push(size),
                None => return Ok(None),
            }
        }
        Ok(Some(sizes))
    }
}

/// One part of a multipart upload, as the store confirmed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 1 to 10,000.
    pub number: u32,
    /// The MD5 of the part's bytes (hex), which the store's ETag for it matched.
    pub md5: String,
}

/// An object being written in parts (each but the last at least 5 MiB), completed or aborted
/// as a whole. Parts may be sent concurrently from clones.
#[derive(Debug, Clone)]
pub struct Upload {
    store: Store,
    key: String,
    id: String,
}

impl Upload {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Sends part `number`; returns once the store confirmed exactly these bytes.
    pub async fn put_part(&self, number: u32, body: bytes::Bytes) -> Result<Part, Error> {
        let md5 = md5_hex(&body)?;
        let number_text = number.to_string();
        let query = [("partNumber", number_text.as_str()), ("uploadId", self.id.as_str())];
        let headers = [("content-md5", content_md5(&md5)?)];
        let response = self.store.send_with("PUT", &self.key, &query, &headers, body).await?;
        let response = self.store.checked("PUT", &self.key, response, false).await?;
        let kms = response
            .as_ref()
            .is_some_and(|r| checkable_etag(r).is_none() && etag_of(r).is_some());
        match response.as_ref().and_then(etag_of) {
            Some(etag) if etag.eq_ignore_ascii_case(&md5) => Ok(Part { number, md5 }),
            // The store checked Content-MD5 itself; a KMS-encrypted part's ETag is not its MD5.
            Some(_) if kms => Ok(Part { number, md5 }),
            other => Err(Error::Integrity {
                key: self.key.clone(),
                problem: format!(
                    "part {number}: the store confirmed ETag {}, the bytes sent have MD5 {md5}",
                    other.as_deref().unwrap_or("(none)")
                ),
            }),
        }
    }

    /// Makes the object out of `parts` (in part-number order); checks the store's ETag for the
    /// whole, the MD5 of the parts' MD5s followed by their count.
    pub async fn complete(self, mut parts: Vec<Part>) -> Result<(), Error> {
        parts.sort_by_key(|p| p.number);
        let mut xml = String::from("<CompleteMultipartUpload>");
        let mut digests = Vec::with_capacity(parts.len() * 16);
        for part in &parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>\"{}\"</ETag></Part>",
                part.number, part.md5
            ));
            digests.extend(hex::decode(&part.md5).map_err(|_| Error::Integrity {
                key: self.key.clone(),
                problem: format!("part {} has no MD5", part.number),
            })?);
        }
        xml.push_str("</CompleteMultipartUpload>");
        let expected = format!("{}-{}", md5_hex(&digests)?, parts.len());
        let query = [("uploadId", self.id.as_str())];
        let response = self.store.send("POST", &self.key, &query, xml.into_bytes()).await?;
        let body = self.store.body_of("POST", &self.key, response).await?;
        if self.store.encryption.as_deref() == Some("aws:kms") {
            // Every part's bytes were checked by the store against their Content-MD5.
            return Ok(());
        }
        match xml_field(&body, "ETag").map(|e| e.trim_matches('"').to_owned()) {
            Some(etag) if etag.eq_ignore_ascii_case(&expected) => Ok(()),
            other => Err(Error::Integrity {
                key: self.key.clone(),
                problem: format!(
                    "the store completed the upload with ETag {}, the parts sent make {expected}",
                    other.as_deref().unwrap_or("(none)")
                ),
            }),
        }
    }

    /// Drops the parts sent so far; the object is not created.
    pub async fn abort(self) -> Result<(), Error> {
        let query = [("uploadId", self.id.as_str())];
        let response = self.store.send("DELETE", &self.key, &query, Vec::new()).await?;
        self.store.checked("DELETE", &self.key, response, true).await?;
        Ok(())
    }
}

/// An object being read chunk by chunk.
pub struct Download {
    key: String,
    response: reqwest::Response,
    /// How the bytes are checked against the ETag, when they can be.
    check: Option<Check>,
}

/// The MD5 of each part as it is read, and the ETag they must make: the MD5 of the bytes for a
/// single-part object (one part of unbounded size), the MD5 of the parts' MD5s and their count
/// for a multipart one.
struct Check {
    sizes: Vec<u64>,
    part: usize,
    left: u64,
    hasher: openssl::hash::Hasher,
    digests: Vec<u8>,
    etag: String,
}

impl Check {
    fn new(sizes: Vec<u64>, etag: String) -> Result<Self, Error> {
        Ok(Self {
            left: sizes.first().copied().unwrap_or(0),
            sizes,
            part: 0,
            hasher: openssl::hash::Hasher::new(MessageDigest::md5())?,
            digests: Vec::new(),
            etag,
        })
    }

    fn update(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let n = usize::try_from(self.left).unwrap_or(usize::MAX).min(data.len());
            if n == 0 {
                // More bytes than the parts add up to: the sum check at the end fails.
                self.part = self.sizes.len() + 1;
                return Ok(());
            }
            let (head, tail) = data.split_at(n);
            self.hasher.update(head)?;
            self.left -= n as u64;
            data = tail;
            if self.left == 0 {
                self.end_part()?;
            }
        }
        Ok(())
    }

    fn end_part(&mut self) -> Result<(), Error> {
        self.digests.extend_from_slice(&self.hasher.finish()?);
        self.part += 1;
        self.left = self.sizes.get(self.part).copied().unwrap_or(0);
        Ok(())
    }

    /// Whether the bytes read make the ETag.
    fn matches(mut self) -> Result<(bool, String), Error> {
        if self.sizes.len() == 1 && self.sizes.first() == Some(&u64::MAX) {
            let md5 = hex::encode(self.hasher.finish()?);
            return Ok((self.etag.eq_ignore_ascii_case(&md5), md5));
        }
        if self.part != self.sizes.len() {
            return Ok((false, format!("{} of {} parts", self.part, self.sizes.len())));
        }
        let whole = format!("{}-{}", md5_hex(&self.digests)?, self.sizes.len());
        Ok((self.etag.eq_ignore_ascii_case(&whole), whole))
    }
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Download {
    /// Whether the bytes will be checked against the ETag when the stream ends.
    pub fn checked(&self) -> bool {
        self.check.is_some()
    }

    /// The next chunk, or None at the end (after the bytes were checked against the ETag).
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, Error> {
        let chunk = self.response.chunk().await.map_err(|source| Error::Request {
            method: "GET",
            key: self.key.clone(),
            source,
        })?;
        match &chunk {
            Some(data) => {
                if let Some(check) = self.check.as_mut() {
                    check.update(data)?;
                }
            }
            None => {
                if let Some(check) = self.check.take() {
                    let etag = check.etag.clone();
                    let (ok, read) = check.matches()?;
                    if !ok {
                        return Err(Error::Integrity {
                            key: self.key.clone(),
                            problem: format!("the bytes read make {read}, the store's ETag is {etag}"),
                        });
                    }
                }
            }
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str) -> Config {
        Config {
            endpoint: endpoint.to_owned(),
            bucket: "b".into(),
            region: "us-east-1".into(),
            credentials: Credentials {
                access_key_id: "AK".into(),
                secret_access_key: Secret::new("the secret".into()),
                session_token: None,
            },
            ca_pem: None,
        }
    }

    #[test]
    fn only_https_endpoints_without_paths_and_secrets_never_print() {
        assert!(Store::new(config("https://127.0.0.1:9000")).is_ok());
        for bad in [
            "http://127.0.0.1:9000",
            "https://",
            "https://h/path",
            "https://u@h",
            "127.0.0.1",
        ] {
            assert!(matches!(Store::new(config(bad)), Err(Error::Endpoint(_))), "{bad}");
        }
        let printed = format!("{:?}", config("https://h"));
        assert!(!printed.contains("the secret"), "{printed}");
    }

    #[test]
    fn multipart_etags_are_checked_part_by_part() {
        let data = b"hello world";
        let md5 = |b: &[u8]| hash(MessageDigest::md5(), b).unwrap().to_vec();
        let etag = format!("{}-2", md5_hex(&[md5(&data[..5]), md5(&data[5..])].concat()).unwrap());
        let read = |chunks: &[&[u8]]| {
            let mut check = Check::new(vec![5, 6], etag.clone()).unwrap();
            for chunk in chunks {
                check.update(chunk).unwrap();
            }
            check.matches().unwrap().0
        };
        assert!(read(&[&data[..3], &data[3..]]), "chunks across the part boundary");
        assert!(read(&[data]));
        assert!(!read(&[b"hello World"]), "one byte changed");
        assert!(!read(&[&data[..8]]), "cut short");
        assert!(!read(&[b"hello world!"]), "one byte more");
        let single = hex::encode(md5(data));
        let mut whole = Check::new(vec![u64::MAX], single).unwrap();
        whole.update(data).unwrap();
        assert!(whole.matches().unwrap().0);
    }

    #[test]
    fn reads_s3_error_documents() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>bad</Message></Error>";
        assert_eq!(error_fields(body), ("SignatureDoesNotMatch".into(), "bad".into()));
        assert_eq!(error_fields("not xml"), (String::new(), String::new()));
    }
}
