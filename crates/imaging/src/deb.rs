//! Reading `.deb` files: an `ar` archive holding `debian-binary`, `control.tar.*` and
//! `data.tar.*`. Only what the builder needs comes out: the control file, the md5sums, and
//! every data entry with its metadata. Paths are normalized and checked: nothing can point
//! outside the image root.

use std::io::Read;

use crate::compress::Format;

/// The most a single package may unpack to (defends against decompression bombs).
const MAX_UNPACKED: u64 = 4 << 30;

/// A .deb could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a Debian package: {0}")]
    Format(String),
    #[error("failed to unpack {member}")]
    Unpack { member: String, source: std::io::Error },
    #[error("unsafe path `{0}` in the package")]
    UnsafePath(String),
}

/// What kind of filesystem entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A hard link to another path of the same package (normalized).
    Hardlink(String),
}

/// One entry of `data.tar`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalized path without a leading `/` (`usr/bin/psql`).
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

/// The parts of a package the builder uses.
#[derive(Debug, Clone)]
pub struct Deb {
    /// The `control` file.
    pub control: String,
    /// The `md5sums` file, if the package has one.
    pub md5sums: Option<String>,
    pub entries: Vec<Entry>,
}

/// Reads a .deb from its bytes.
pub fn read(bytes: &[u8]) -> Result<Deb, Error> {
    read_limited(bytes, MAX_UNPACKED)
}

/// Reads a .deb whose control and data archives may each unpack to at most `limit` bytes.
pub fn read_limited(bytes: &[u8], limit: u64) -> Result<Deb, Error> {
    let members = ar_members(bytes)?;
    let mut iter = members.iter();
    match iter.next() {
        Some((name, data)) if name == "debian-binary" && data.starts_with(b"2.") => {}
        _ => return Err(Error::Format("the first member is not debian-binary 2.x".into())),
    }
    let find = |prefix: &str| members.iter().find(|(name, _)| name.starts_with(prefix));
    let (control_name, control_data) =
        find("control.tar").ok_or_else(|| Error::Format("no control.tar member".into()))?;
    let (data_name, data_data) = find("data.tar").ok_or_else(|| Error::Format("no data.tar member".into()))?;

    let mut control = None;
    let mut md5sums = None;
    for entry in tar_entries(control_name, control_data, limit)? {
        match (entry.path.as_str(), entry.kind) {
            ("control", Kind::File(data)) => control = Some(String::from_utf8_lossy(&data).into_owned()),
            ("md5sums", Kind::File(data)) => md5sums = Some(String::from_utf8_lossy(&data).into_owned()),
            _ => {}
        }
    }
    let control = control.ok_or_else(|| Error::Format("control.tar has no control file".into()))?;
    Ok(Deb {
        control,
        md5sums,
        entries: tar_entries(data_name, data_data, limit)?,
    })
}

/// Splits an `ar` archive into (name, bytes) members.
fn ar_members(bytes: &[u8]) -> Result<Vec<(String, &[u8])>, Error> {
    let mut rest = bytes
        .strip_prefix(b"!<arch>\n")
        .ok_or_else(|| Error::Format("missing ar magic".into()))?;
    let mut members = Vec::new();
    while !rest.is_empty() {
        let (header, tail) = rest
            .split_at_checked(60)
            .ok_or_else(|| Error::Format("truncated ar header".into()))?;
        if header.get(58..60) != Some(b"`\n") {
            return Err(Error::Format("bad ar header terminator".into()));
        }
        let field = |range: std::ops::Range<usize>| -> String {
            String::from_utf8_lossy(header.get(range).unwrap_or_default())
                .trim()
                .to_owned()
        };
        let name = field(0..16).trim_end_matches('/').to_owned();
        let size: usize = field(48..58)
            .parse()
            .map_err(|_| Error::Format("bad ar member size".into()))?;
        let (data, tail) = tail
            .split_at_checked(size)
            .ok_or_else(|| Error::Format(format!("truncated member {name}")))?;
        members.push((name, data));
        // Members are padded to an even offset.
        rest = if size % 2 == 1 {
            tail.get(1..).unwrap_or_default()
        } else {
            tail
        };
    }
    Ok(members)
}

/// Every entry of a (possibly compressed) tar member.
fn tar_entries(member: &str, data: &[u8], limit: u64) -> Result<Vec<Entry>, Error> {
    let format =
        Format::from_name(member).ok_or_else(|| Error::Format(format!("unsupported compression of {member}")))?;
    let reader = format.reader(data).map_err(|source| Error::Unpack {
        member: member.to_owned(),
        source,
    })?;
    read_tar_limited(member, reader, limit)
}

/// Every entry of a tar stream (`member` names it in errors). Whiteout files of image layers
/// come out as ordinary entries; the caller interprets them.
pub fn read_tar(member: &str, reader: impl Read) -> Result<Vec<Entry>, Error> {
    read_tar_limited(member, reader, MAX_UNPACKED)
}

/// The same, reading at most `limit` bytes of the stream: past it the archive ends early,
/// which tar reports as an error.
pub fn read_tar_limited(member: &str, reader: impl Read, limit: u64) -> Result<Vec<Entry>, Error> {
    let unpack = |source: std::io::Error| Error::Unpack {
        member: member.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(reader.take(limit));
    let mut out = Vec::new();
    for entry in archive.entries().map_err(unpack)? {
        let mut entry = entry.map_err(unpack)?;
        let raw_path = entry.path().map_err(unpack)?.to_string_lossy().into_owned();
        let Some(path) = normalize(&raw_path)? else { continue };
        let header = entry.header();
        let mode = header.mode().map_err(unpack)? & 0o7777;
        let mtime = header.mtime().map_err(unpack)?;
        let uid = u32::try_from(header.uid().map_err(unpack)?).unwrap_or(u32::MAX);
        let gid = u32::try_from(header.gid().map_err(unpack)?).unwrap_or(u32::MAX);
        let link = || -> Result<String, Error> {
            let target = entry
                .link_name()
                .map_err(unpack)?
                .ok_or_else(|| Error::Format(format!("link {path} has no target")))?;
            Ok(target.to_string_lossy().into_owned())
        };
        let kind = match header.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => {
                let target = link()?;
                Kind::Hardlink(normalize(&target)?.ok_or(Error::UnsafePath(target))?)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(unpack)?;
                Kind::File(data)
            }
            // Device nodes, FIFOs and the like have no place in an image.
            other => {
                tracing::debug!(%path, ?other, "skipping special file");
                continue;
            }
        };
        out.push(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
        });
    }
    Ok(out)
}

/// `./usr/bin/x` → `usr/bin/x`; `./` → None; anything climbing out is an error.
pub fn normalize(raw: &str) -> Result<Option<String>, Error> {
    let mut parts = Vec::new();
    for component in raw.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(Error::UnsafePath(raw.to_owned())),
            c => parts.push(c),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_traversal() {
        assert_eq!(normalize("./usr/bin/x").unwrap().as_deref(), Some("usr/bin/x"));
        assert_eq!(normalize("/etc//passwd").unwrap().as_deref(), Some("etc/passwd"));
        assert_eq!(normalize("./").unwrap(), None);
        assert!(normalize("./usr/../../etc/shadow").is_err());
    }

    #[test]
    fn refuses_what_is_not_a_deb() {
        assert!(read(b"not an archive").is_err());
        assert!(read(b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n").is_err());
        let truncated = b"!<arch>\ndebian-binary   0           0     0     100644  400       `\n2.0\n";
        assert!(read(truncated).unwrap_err().to_string().contains("truncated"));
    }
}
