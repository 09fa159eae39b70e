//! The cleartext signature framework (RFC 9580 §7), as used by Debian's `InRelease`.

use super::Error;

const BEGIN_MESSAGE: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";

/// A cleartext-signed message split into what was signed and the armored signature.
#[derive(Debug)]
pub struct Cleartext<'a> {
    /// The message as the reader sees it: dash-unescaped lines, each ending in `\n`.
    pub text: String,
    /// The bytes the signature covers: trailing whitespace removed, lines joined by CRLF.
    pub signed: Vec<u8>,
    /// The armored signature block, from its BEGIN line on.
    pub armored_signature: &'a str,
}

/// Splits a cleartext-signed message. Anything before the header or after the signature is
/// not part of the result, so it cannot smuggle content past the check.
pub fn split(input: &str) -> Result<Cleartext<'_>, Error> {
    let start = input.find(BEGIN_MESSAGE).ok_or(Error::NotSigned)?;
    let body = input.get(start..).ok_or(Error::NotSigned)?;
    if input.get(..start).is_some_and(|before| !before.trim().is_empty()) {
        return Err(Error::Malformed("data before the signed message".into()));
    }
    let mut pos = 0usize;
    let mut lines = body.split_inclusive('\n').map(|line| {
        let at = pos;
        pos += line.len();
        (at, line.trim_end_matches(['\n', '\r']))
    });
    lines.next(); // the BEGIN line
    // Armor headers (`Hash: SHA256`) up to the first empty line.
    for (_, line) in lines.by_ref() {
        if line.is_empty() {
            break;
        }
    }
    let mut text = String::new();
    let mut signed_lines: Vec<&str> = Vec::new();
    let mut signature_at = None;
    for (at, line) in lines {
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
        text.push_str(unescaped);
        text.push('\n');
        signed_lines.push(unescaped.trim_end_matches([' ', '\t']));
    }
    let at = signature_at.ok_or_else(|| Error::Malformed("no signature after the signed text".into()))?;
    let armored_signature = body
        .get(at..)
        .ok_or_else(|| Error::Malformed("signature offset".into()))?;
    Ok(Cleartext {
        text,
        signed: signed_lines.join("\r\n").into_bytes(),
        armored_signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_unescapes_dashes_and_canonicalizes_line_ends() {
        let input = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Test  \n- -dash\n\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n";
        let c = split(input).unwrap();
        assert_eq!(c.text, "Origin: Test  \n-dash\n\n");
        assert_eq!(c.signed, b"Origin: Test\r\n-dash\r\n");
        assert!(c.armored_signature.starts_with(BEGIN_SIGNATURE));
    }

    #[test]
    fn refuses_unsigned_truncated_and_prefixed_input() {
        assert!(matches!(split("Origin: Debian\n"), Err(Error::NotSigned)));
        assert!(split("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: x\n").is_err());
        let prefixed =
            "Suite: evil\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n";
        assert!(split(prefixed).is_err());
        let unescaped = "-----BEGIN PGP SIGNED MESSAGE-----\n\n-x\n-----BEGIN PGP SIGNATURE-----\n";
        assert!(split(unescaped).is_err());
    }
}
