//! OpenPGP packet framing (RFC 9580 §4) and a bounds-checked byte reader.

use super::Error;

/// Packet tags we act on.
pub const TAG_SIGNATURE: u8 = 2;
pub const TAG_PUBLIC_KEY: u8 = 6;
pub const TAG_USER_ID: u8 = 13;
pub const TAG_PUBLIC_SUBKEY: u8 = 14;

/// One packet: its tag and body.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub tag: u8,
    pub body: &'a [u8],
}

/// Splits `data` into packets. Partial and indeterminate lengths (used only for streamed
/// literal data, never in keys or signatures) are refused.
pub fn packets(data: &[u8]) -> Result<Vec<Packet<'_>>, Error> {
    let mut reader = Reader::new(data);
    let mut out = Vec::new();
    while !reader.is_empty() {
        let header = reader.u8()?;
        if header & 0x80 == 0 {
            return Err(Error::Malformed("packet header without its marker bit".into()));
        }
        let (tag, len) = if header & 0x40 != 0 {
            let tag = header & 0x3F;
            let first = reader.u8()?;
            let len = match first {
                0..=191 => usize::from(first),
                192..=223 => ((usize::from(first) - 192) << 8) + usize::from(reader.u8()?) + 192,
                255 => to_usize(reader.u32()?)?,
                _ => {
                    return Err(Error::Malformed("partial body lengths are not supported".into()));
                }
            };
            (tag, len)
        } else {
            let tag = (header >> 2) & 0x0F;
            let len = match header & 0x03 {
                0 => usize::from(reader.u8()?),
                1 => usize::from(reader.u16()?),
                2 => to_usize(reader.u32()?)?,
                _ => {
                    return Err(Error::Malformed(
                        "indeterminate packet lengths are not supported".into(),
                    ));
                }
            };
            (tag, len)
        };
        out.push(Packet {
            tag,
            body: reader.take(len)?,
        });
    }
    Ok(out)
}

fn to_usize(n: u32) -> Result<usize, Error> {
    usize::try_from(n).map_err(|_| Error::Malformed("length does not fit in memory".into()))
}

/// A cursor over untrusted bytes: every read is checked, none can panic.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let (head, tail) = self
            .data
            .split_at_checked(n)
            .ok_or_else(|| Error::Malformed(format!("truncated: wanted {n} bytes, {} left", self.data.len())))?;
        self.data = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Error> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Error::Malformed("short read".into()))
    }

    /// A multiprecision integer: a 16-bit bit count, then the big-endian bytes.
    pub fn mpi(&mut self) -> Result<&'a [u8], Error> {
        let bits = usize::from(self.u16()?);
        self.take(bits.div_ceil(8))
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_new_and_old_format_headers() {
        // new format tag 13, length 3; old format tag 2 (0b1000_1000), one-byte length 2.
        let data = [0xCD, 3, b'a', b'b', b'c', 0x88, 2, 9, 9];
        let parsed = packets(&data).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!((parsed[0].tag, parsed[0].body), (13, &b"abc"[..]));
        assert_eq!((parsed[1].tag, parsed[1].body), (2, &[9u8, 9][..]));
    }

    #[test]
    fn two_octet_lengths_are_decoded() {
        let mut data = vec![0xC2, 192, 8];
        data.extend(std::iter::repeat_n(0u8, 200));
        assert_eq!(packets(&data).unwrap()[0].body.len(), 200);
    }

    #[test]
    fn truncated_and_partial_packets_are_errors_not_panics() {
        assert!(packets(&[0xCD, 5, 1]).is_err());
        assert!(packets(&[0xCD, 230]).is_err());
        assert!(packets(&[0x0D, 1, 1]).is_err());
        assert!(packets(&[0x8B, 0]).is_err());
        assert!(Reader::new(&[0, 9, 1]).mpi().is_err());
    }
}
