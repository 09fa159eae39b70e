//! Decompression of what Debian repositories serve: xz, gzip, zstd, or nothing.

use std::io::{self, Read};

/// The most memory the xz decoder may use. `xz -9` needs 65 MiB to decompress; a header that
/// asks for more (up to 4 GiB of dictionary) is refused, not obeyed.
const XZ_MEMLIMIT: u64 = 256 << 20;

/// A compression format, from a file name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Format {
    /// The format a file name's extension announces, if we read it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("xz") => Some(Self::Xz),
            Some("gz") => Some(Self::Gzip),
            Some("zst") => Some(Self::Zstd),
            Some("tar") | None => Some(Self::None),
            Some(_) if !name.contains('.') => Some(Self::None),
            Some(_) => None,
        }
    }

    /// Wraps `reader` in the matching decoder.
    pub fn reader<'a>(self, reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Self::None => Box::new(reader),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Self::Xz => {
                // Concatenated streams like `xz -d`; memory bounded by XZ_MEMLIMIT instead of
                // whatever dictionary size the header asks for.
                let stream = liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, liblzma::stream::CONCATENATED)
                    .map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(reader, stream))
            }
            Self::Zstd => Box::new(ruzstd::decoding::StreamingDecoder::new(reader).map_err(io::Error::other)?),
        })
    }
}

/// Decompresses a whole buffer, refusing output beyond `limit` bytes (a decompression bomb).
pub fn decompress(format: Format, data: &[u8], limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    format
        .reader(data)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::other(format!("decompresses to more than {limit} bytes")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn formats_from_names() {
        assert_eq!(Format::from_name("Packages.xz"), Some(Format::Xz));
        assert_eq!(Format::from_name("data.tar.zst"), Some(Format::Zstd));
        assert_eq!(Format::from_name("Packages"), Some(Format::None));
        assert_eq!(Format::from_name("data.tar"), Some(Format::None));
        assert_eq!(Format::from_name("data.tar.bz2"), None);
    }

    #[test]
    fn round_trips_gzip_and_xz_and_stops_bombs() {
        let data = vec![7u8; 100_000];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(Format::Gzip, &gz, 1 << 20).unwrap(), data);
        assert!(decompress(Format::Gzip, &gz, 1000).is_err());

        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&data).unwrap();
        let xz = xz.finish().unwrap();
        assert_eq!(decompress(Format::Xz, &xz, 1 << 20).unwrap(), data);
        // Two streams back to back, as some archives carry them.
        let twice = [xz.clone(), xz].concat();
        assert_eq!(decompress(Format::Xz, &twice, 1 << 20).unwrap().len(), 2 * data.len());
    }

    #[test]
    fn an_xz_header_asking_for_more_memory_than_allowed_is_refused() {
        // LZMA2 with a 1.5 GiB dictionary: compress an empty input with that filter.
        let mut options = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
        options.dict_size(1536 << 20);
        let mut filters = liblzma::stream::Filters::new();
        filters.lzma2(&options);
        let stream = liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc64).unwrap();
        let mut xz = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        xz.write_all(b"x").unwrap();
        let xz = xz.finish().unwrap();
        let err = decompress(Format::Xz, &xz, 1 << 20).unwrap_err();
        assert!(err.to_string().to_lowercase().contains("mem"), "{err}");
    }
}
