//! ASCII armor (RFC 9580 §6): `-----BEGIN PGP <KIND>-----`, optional headers, a blank line,
//! base64 data, an optional `=` CRC-24 line, `-----END PGP <KIND>-----`.

use base64::Engine as _;

use super::Error;

/// Decodes every armored block of `kind` (e.g. `PUBLIC KEY BLOCK`, `SIGNATURE`) in `text`.
pub fn decode_all(text: &str, kind: &str) -> Result<Vec<Vec<u8>>, Error> {
    let begin = format!("-----BEGIN PGP {kind}-----");
    let end = format!("-----END PGP {kind}-----");
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(|l| l.trim_end_matches([' ', '\t', '\r']));
    while lines.by_ref().any(|l| l == begin) {
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
                // Headers are `Key: value` lines up to the first blank line.
                if line.is_empty() {
                    in_headers = false;
                    continue;
                }
                if line.contains(": ") {
                    continue;
                }
                in_headers = false;
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
        if let Some(sum) = crc {
            let expected = base64::engine::general_purpose::STANDARD
                .decode(sum.as_bytes())
                .map_err(|e| Error::Armor(format!("bad checksum line: {e}")))?;
            let actual = crc24(&data).to_be_bytes();
            if expected.as_slice() != actual.get(1..).unwrap_or_default() {
                return Err(Error::Armor(format!("{kind} block fails its CRC-24 checksum")));
            }
        }
        blocks.push(data);
    }
    if blocks.is_empty() {
        return Err(Error::Armor(format!("no armored {kind} block found")));
    }
    Ok(blocks)
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
    }
}
