//! The cleartext signature framework (RFC 9580 §7), as used by Debian's `InRelease`.
//!
//! Stricter than the RFC where GnuPG is, and where leniency could let unsigned bytes through:
//! the message starts at the beginning of the input (blank lines aside), its only armor headers
//! are `Hash:` lines naming known algorithms, exactly one signature block follows, and nothing
//! but blank lines comes after it. The text handed back is exactly what the signature covers.

use super::Error;

const BEGIN_MESSAGE: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";
const END_SIGNATURE: &str = "-----END PGP SIGNATURE-----";

/// What a cleartext message may announce in `Hash:`, by armor name and algorithm number.
/// MD5 and RIPEMD-160 are refused even beside a strong hash, as gpgv refuses them; SHA-1 may
/// be announced, but a SHA-1 signature never counts.
const HASH_NAMES: &[(&str, u8)] = &[
    ("SHA1", 2),
    ("SHA256", 8),
    ("SHA384", 9),
    ("SHA512", 10),
    ("SHA224", 11),
];

/// A cleartext-signed message split into what was signed and the armored signature.
#[derive(Debug)]
pub struct Cleartext<'a> {
    /// The signed text as the signature covers it: dash-unescaped, trailing blanks removed,
    /// each line ending in `\n`.
    pub text: String,
    /// The bytes the signature covers: those lines joined by CRLF.
    pub signed: Vec<u8>,
    /// The hash algorithms the `Hash:` headers announce; a signature with another one does
    /// not count (GnuPG does not compute it either).
    pub hashes: Vec<u8>,
    /// The armored signature block, from its BEGIN line to the end of its END line.
    pub armored_signature: &'a str,
}

/// Removes what the signature does not cover from the end of a line: spaces, tabs and
/// carriage returns (RFC 9580 §7.2).
fn trim_blanks(line: &str) -> &str {
    line.trim_end_matches([' ', '\t', '\r'])
}

/// Splits a cleartext-signed message.
pub fn split(input: &str) -> Result<Cleartext<'_>, Error> {
    // Lines with their offsets; a line's text excludes its `\n` and any `\r` before it.
    let mut pos = 0usize;
    let mut lines = input.split_inclusive('\n').map(|line| {
        let at = pos;
        pos += line.len();
        (at, line.trim_end_matches(['\n', '\r']))
    });

    // Blank lines may precede the message; anything else is refused.
    loop {
        match lines.next() {
            None => return Err(Error::NotSigned),
            Some((_, line)) if line.trim().is_empty() => {}
            Some((_, line)) if line == BEGIN_MESSAGE => break,
            Some(_) if input.contains(BEGIN_MESSAGE) => {
                return Err(Error::Malformed("data before the signed message".into()));
            }
            Some(_) => return Err(Error::NotSigned),
        }
    }

    // Armor headers up to an empty line: `Hash:` only, naming algorithms we know.
    let mut hashes = Vec::new();
    loop {
        let (_, line) = lines
            .next()
            .ok_or_else(|| Error::Malformed("the signed message ends in its headers".into()))?;
        if line.is_empty() {
            break;
        }
        let names = line
            .strip_prefix("Hash: ")
            .ok_or_else(|| Error::Malformed(format!("unexpected armor header `{}`", line.escape_debug())))?;
        for name in names.split(',').map(str::trim) {
            let id = HASH_NAMES
                .iter()
                .find_map(|(n, id)| (*n == name).then_some(*id))
                .ok_or_else(|| {
                    Error::Malformed(format!("unknown hash `{}` in the Hash header", name.escape_debug()))
                })?;
            hashes.push(id);
        }
    }
    if hashes.is_empty() {
        return Err(Error::Malformed("no Hash header before the signed text".into()));
    }

    let mut signed_lines: Vec<&str> = Vec::new();
    let mut signature_at = None;
    for (at, line) in lines.by_ref() {
        if line == BEGIN_SIGNATURE {
            signature_at = Some(at);
            break;
        }
        let unescaped = match line.strip_prefix("- ") {
            Some(rest) => rest,
            None if line.starts_with('-') => {
                return Err(Error::Malformed(
                    "an unescaped line starting with '-' in the signed text".into(),
                ));
            }
            None => line,
        };
        signed_lines.push(trim_blanks(unescaped));
    }
    let start = signature_at.ok_or_else(|| Error::Malformed("no signature after the signed text".into()))?;

    // One signature block, then nothing but blank lines.
    let mut end = None;
    for (at, line) in lines.by_ref() {
        if line == END_SIGNATURE {
            end = Some(at + line.len());
            break;
        }
    }
    let end = end.ok_or_else(|| Error::Armor("unterminated SIGNATURE block".into()))?;
    if lines.any(|(_, line)| !line.trim().is_empty()) {
        return Err(Error::Malformed("data after the signature".into()));
    }
    let armored_signature = input
        .get(start..end)
        .ok_or_else(|| Error::Malformed("signature offset".into()))?;

    let mut text = String::new();
    for line in &signed_lines {
        text.push_str(line);
        text.push('\n');
    }
    Ok(Cleartext {
        text,
        signed: signed_lines.join("\r\n").into_bytes(),
        hashes,
        armored_signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n";

    fn message(headers: &str, body: &str) -> String {
        if headers.is_empty() {
            format!("{BEGIN_MESSAGE}\n\n{body}{SIG}")
        } else {
            format!("{BEGIN_MESSAGE}\n{headers}\n\n{body}{SIG}")
        }
    }

    #[test]
    fn splits_text_unescapes_dashes_and_returns_only_what_is_signed() {
        let input = message("Hash: SHA256", "Origin: Test  \n- -dash\t\r\n\n");
        let c = split(&input).unwrap();
        assert_eq!(c.text, "Origin: Test\n-dash\n\n");
        assert_eq!(c.signed, b"Origin: Test\r\n-dash\r\n");
        assert_eq!(c.hashes, vec![8]);
        assert!(c.armored_signature.starts_with(BEGIN_SIGNATURE));
        assert!(c.armored_signature.ends_with(END_SIGNATURE));
    }

    #[test]
    fn hash_headers_are_required_known_and_alone() {
        assert_eq!(
            split(&message("Hash: SHA1, SHA512", "x\n")).unwrap().hashes,
            vec![2, 10]
        );
        for headers in [
            "",
            "Hash: SHA256\nComment: x",
            "Version: x",
            "Hash: FOO",
            "hash: SHA256",
            "Hash: SHA256\n ",
            "Hash: MD5, SHA256",
        ] {
            let err = split(&message(headers, "x\n")).unwrap_err();
            assert!(matches!(err, Error::Malformed(_)), "{headers:?}: {err}");
        }
    }

    #[test]
    fn refuses_unsigned_truncated_prefixed_and_suffixed_input() {
        assert!(matches!(split("Origin: Debian\n"), Err(Error::NotSigned)));
        assert!(split("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: x\n").is_err());
        let good = message("Hash: SHA256", "x\n");
        assert!(
            split(&format!("\n \n{good}\n\n")).is_ok(),
            "blank lines around are fine"
        );
        for bad in [
            format!("Suite: evil\n{good}"),
            format!(" {good}"),
            format!("{good}Suite: evil\n"),
            format!("{good}{good}"),
            format!("{good}{SIG}"),
            good.replace("-----END PGP SIGNATURE-----\n", ""),
            good.replace("\nx\n", "\n-x\n"),
        ] {
            assert!(split(&bad).is_err(), "{bad:?}");
        }
    }
}
