//! ASCII armor (RFC 9580 §6): `-----BEGIN PGP <KIND>-----`, optional headers, a blank line,
//! base64 data in lines of at most 76 characters, a `=` CRC-24 line, `-----END PGP <KIND>-----`.
//! The CRC is optional in RFC 9580 but required here: `gpgv` 2.2 loses the end of some
//! blocks without it, and every repository and key we pin carries one.

use base64::Engine as _;

use super::Error;

/// The longest armor line RFC 9580 allows. GnuPG misreads some longer ones, so they are refused.
const MAX_LINE: usize = 76;

/// Decodes every armored block of `kind` (e.g. `PUBLIC KEY BLOCK`, `SIGNATURE`) in `text`.
pub fn decode_all(text: &str, kind: &str) -> Result<Vec<Vec<u8>>, Error> {
    let begin = format!("-----BEGIN PGP {kind}-----");
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(|l| l.trim_end_matches([' ', '\t', '\r']));
    while lines.by_ref().any(|l| l == begin) {
        blocks.push(decode_block(&mut lines, kind)?);
    }
    if blocks.is_empty() {
        return Err(Error::Armor(format!("no armored {kind} block found")));
    }
    Ok(blocks)
}

/// Decodes `text` that must be exactly one armored block of `kind`.
pub fn decode_one(text: &str, kind: &str) -> Result<Vec<u8>, Error> {
    let begin = format!("-----BEGIN PGP {kind}-----");
    let mut lines = text.lines().map(|l| l.trim_end_matches([' ', '\t', '\r']));
    if lines.next() != Some(begin.as_str()) {
        return Err(Error::Armor(format!("no armored {kind} block found")));
    }
    let block = decode_block(&mut lines, kind)?;
    if lines.any(|l| !l.is_empty()) {
        return Err(Error::Armor(format!("data after the {kind} block")));
    }
    Ok(block)
}

/// Decodes the lines after a BEGIN line up to and including the END line: headers
/// (`Key: value`) ended by an empty line, base64, an optional CRC-24 line last.
fn decode_block<'a>(lines: &mut impl Iterator<Item = &'a str>, kind: &str) -> Result<Vec<u8>, Error> {
    let end = format!("-----END PGP {kind}-----");
    let mut body = String::new();
    let mut crc = None;
    let mut in_headers = true;
    let mut closed = false;
    for line in lines.by_ref() {
        if line == end {
            closed = true;
            break;
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
            } else if !is_header(line) {
                return Err(Error::Armor(format!(
                    "the {kind} block's headers do not end with an empty line"
                )));
            }
            continue;
        }
        if crc.is_some() {
            return Err(Error::Armor(format!("data after the checksum in the {kind} block")));
        }
        if line.len() > MAX_LINE {
            return Err(Error::Armor(format!(
                "a line of the {kind} block is longer than {MAX_LINE} characters"
            )));
        }
        if let Some(sum) = line.strip_prefix('=') {
            crc = Some(sum.to_owned());
        } else {
            body.push_str(line);
        }
    }
    if !closed {
        return Err(Error::Armor(format!("unterminated {kind} block")));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| Error::Armor(format!("bad base64 in {kind} block: {e}")))?;
    let sum = crc.ok_or_else(|| Error::Armor(format!("the {kind} block has no CRC-24 line")))?;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(sum.as_bytes())
        .map_err(|e| Error::Armor(format!("bad checksum line: {e}")))?;
    let actual = crc24(&data).to_be_bytes();
    if expected.as_slice() != actual.get(1..).unwrap_or_default() {
        return Err(Error::Armor(format!("{kind} block fails its CRC-24 checksum")));
    }
    Ok(data)
}

/// An armor header line: `Key: value` with a key of letters and digits.
fn is_header(line: &str) -> bool {
    line.split_once(": ")
        .is_some_and(|(key, _)| !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// CRC-24 as defined for OpenPGP armor.
fn crc24(data: &[u8]) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc24_matches_the_rfc_reference_value_for_empty_input() {
        assert_eq!(crc24(b""), 0x00B7_04CE);
    }

    #[test]
    fn decodes_body_and_checks_the_crc() {
        // "hello" armored with its CRC-24.
        let data = b"hello";
        let crc = crc24(data).to_be_bytes();
        let sum = base64::engine::general_purpose::STANDARD.encode(&crc[1..]);
        let text = format!(
            "junk\n-----BEGIN PGP SIGNATURE-----\nVersion: x\n\naGVsbG8=\n={sum}\n-----END PGP SIGNATURE-----\n"
        );
        assert_eq!(decode_all(&text, "SIGNATURE").unwrap(), vec![data.to_vec()]);

        let tampered = text.replace("aGVsbG8=", "d29ybGQ=");
        assert!(
            decode_all(&tampered, "SIGNATURE")
                .unwrap_err()
                .to_string()
                .contains("CRC-24")
        );
    }

    #[test]
    fn a_missing_or_unterminated_block_is_an_error() {
        assert!(decode_all("nothing here", "SIGNATURE").is_err());
        assert!(decode_all("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n", "SIGNATURE").is_err());
        let long = format!(
            "-----BEGIN PGP SIGNATURE-----\n\n{}\n=AAAA\n-----END PGP SIGNATURE-----\n",
            "A".repeat(80)
        );
        assert!(
            decode_all(&long, "SIGNATURE")
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
    }

    #[test]
    fn headers_end_with_an_empty_line_and_one_block_means_one() {
        let block = "-----BEGIN PGP SIGNATURE-----\nVersion: x\n\naGVsbG8=\n=R/WK\n-----END PGP SIGNATURE-----\n";
        assert_eq!(decode_one(block, "SIGNATURE").unwrap(), b"hello");
        let no_blank = block.replace("Version: x\n\n", "Version: x\n");
        assert!(decode_one(&no_blank, "SIGNATURE").is_err());
        assert!(decode_one(&format!("{block}{block}"), "SIGNATURE").is_err());
        let after_crc = block.replace("aGVsbG8=\n=R/WK\n", "=R/WK\naGVsbG8=\n");
        assert!(decode_one(&after_crc, "SIGNATURE").is_err());
        let no_crc = block.replace("=R/WK\n", "");
        assert!(
            decode_one(&no_crc, "SIGNATURE")
                .unwrap_err()
                .to_string()
                .contains("CRC")
        );
    }
}
