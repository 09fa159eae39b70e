//! SHA-256 helpers (OpenSSL's implementation): of bytes, of files, and of a stream as it is
//! written, so nothing is read twice.

use std::io::{self, Write};
use std::path::Path;

/// Whether `hex` is a SHA-256 as we write it: 64 lowercase hexadecimal digits. Every digest
/// read from a file, an index or a registry is checked with this before it becomes part of a
/// path or a URL.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `digest` is an OCI `sha256:<64 lowercase hex>` digest.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(is_sha256_hex)
}

/// `sha256` of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(data))
}

/// `sha256` and length of a file, read in one pass.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut writer = HashingWriter::new(io::sink());
    io::copy(&mut file, &mut writer)?;
    let (_, hex, len) = writer.finish();
    Ok((hex, len))
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: openssl::sha::Sha256,
    len: u64,
}

impl<W> std::fmt::Debug for HashingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingWriter")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: openssl::sha::Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, the hex digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finish()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or_default();
        self.hasher.update(written);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (bytes, hex, len) = w.finish();
        assert_eq!((bytes.as_slice(), len), (&b"abc"[..], 3));
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn only_a_plain_sha256_is_a_digest() {
        let good = sha256_hex(b"x");
        assert!(is_sha256_hex(&good));
        assert!(is_sha256_digest(&format!("sha256:{good}")));
        for bad in [
            "../../victim.txt".to_owned(),
            good.to_ascii_uppercase(),
            format!("{good}0"),
            good.chars().take(63).collect(),
            format!("../{}", good.chars().skip(3).collect::<String>()),
            String::new(),
        ] {
            assert!(!is_sha256_hex(&bad), "{bad}");
            assert!(!is_sha256_digest(&format!("sha256:{bad}")), "{bad}");
        }
        assert!(!is_sha256_digest(&good), "the algorithm is part of a digest");
    }
}
