//! Deterministic layers: the entries of one layer of the tree as a tar stream with sorted
//! paths, numeric owners, empty user and group names, clamped timestamps and every parent
//! directory present; compressed with one pinned gzip implementation and level.

use std::collections::BTreeSet;
use std::io::Write as _;

use crate::digest::{HashingWriter, sha256_hex};
use crate::tree::{Kind, Tree};

/// The one compressor: flate2's zlib-rs backend at this level, gzip header with mtime 0.
/// Changing either changes every digest, so it is versioned with the tool.
pub const GZIP_LEVEL: u32 = 6;

/// A finished layer.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    /// The gzip-compressed tar.
    pub blob: Vec<u8>,
    /// `sha256:` of `blob`.
    pub digest: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    pub uncompressed_size: u64,
}

/// Writing a layer failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to write layer {name}")]
pub struct Error {
    pub name: String,
    #[source]
    pub source: std::io::Error,
}

/// Writes every layer of `tree` (`names` gives their names by index), in parallel.
pub fn write_all(tree: &Tree, names: &[String]) -> Result<Vec<Layer>, Error> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(index, name)| scope.spawn(move || write(tree, index, name)))
            .collect();
        handles
            .into_iter()
            .zip(names)
            .map(|(h, name)| {
                h.join().unwrap_or_else(|_| {
                    Err(Error {
                        name: name.clone(),
                        source: std::io::Error::other("writer panicked"),
                    })
                })
            })
            .collect()
    })
}

/// Writes layer `index` of `tree`.
pub fn write(tree: &Tree, index: usize, name: &str) -> Result<Layer, Error> {
    let err = |source| Error {
        name: name.to_owned(),
        source,
    };
    // The entries of this layer and every directory above them (from the tree when known).
    let mut paths: BTreeSet<&str> = BTreeSet::new();
    for (path, node) in &tree.nodes {
        if node.layer != index {
            continue;
        }
        paths.insert(path);
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            paths.insert(up);
            parent = up;
        }
    }
    let mut builder = tar::Builder::new(HashingWriter::new(Vec::new()));
    builder.mode(tar::HeaderMode::Complete);
    for path in paths {
        let node = tree.get(path);
        let mut header = tar::Header::new_gnu();
        header.set_uid(node.map_or(0, |n| u64::from(n.uid)));
        header.set_gid(node.map_or(0, |n| u64::from(n.gid)));
        header.set_mtime(node.map_or(0, |n| n.mtime));
        header.set_mode(node.map_or(0o755, |n| n.mode & 0o7777));
        match node.map(|n| &n.kind) {
            None | Some(Kind::Dir) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .map_err(err)?;
            }
            Some(Kind::File(data)) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice()).map_err(err)?;
            }
            Some(Kind::Symlink(target)) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, path, target).map_err(err)?;
            }
            Some(Kind::Hardlink(target)) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                builder.append_link(&mut header, path, target).map_err(err)?;
            }
        }
    }
    let hashing = builder.into_inner().map_err(err)?;
    let (tar, diff, uncompressed_size) = hashing.finish();
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    gz.write_all(&tar).map_err(err)?;
    let blob = gz.finish().map_err(err)?;
    Ok(Layer {
        name: name.to_owned(),
        digest: format!("sha256:{}", sha256_hex(&blob)),
        diff_id: format!("sha256:{diff}"),
        uncompressed_size,
        blob,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Node;
    use std::io::Read as _;

    fn sample() -> Tree {
        let mut t = Tree::default();
        t.insert(
            "usr/bin/tool",
            Node {
                mtime: 99,
                ..Node::file(b"#!x".to_vec(), 0o755, 1)
            },
        );
        t.insert("usr/lib/a-very-long-directory-name-that-goes-on/and-on-and-on/well-past-one-hundred-characters/libthing.so.1", Node::file(b"lib".to_vec(), 0o644, 1));
        t.insert("etc/link", Node::symlink("/usr/bin/tool", 1));
        t.insert(
            "var/lib/postgresql",
            Node {
                uid: 26,
                gid: 26,
                ..Node::dir(0o700, 1)
            },
        );
        t.insert("other", Node::file(b"not here".to_vec(), 0o644, 2));
        t
    }

    #[test]
    fn same_tree_same_digest_and_entries_sorted_with_parents() {
        let a = write(&sample(), 1, "l").unwrap();
        let b = write(&sample(), 1, "l").unwrap();
        assert_eq!((a.digest.clone(), a.diff_id.clone()), (b.digest, b.diff_id));

        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(a.blob.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u64, u64, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert!(paths.contains(&"usr/") && paths.contains(&"usr/bin/") && paths.contains(&"etc/link"));
        assert!(!paths.contains(&"other"));
        assert!(
            paths.iter().any(|p| p.ends_with("libthing.so.1")),
            "long names survive: {paths:?}"
        );
        assert!(entries.contains(&("var/lib/postgresql/".into(), 26, 0, 0o700)));
        assert!(entries.contains(&("usr/bin/tool".into(), 0, 99, 0o755)));
    }

    #[test]
    fn a_changed_byte_changes_both_digests() {
        let a = write(&sample(), 1, "l").unwrap();
        let mut t = sample();
        t.insert(
            "usr/bin/tool",
            Node {
                mtime: 99,
                ..Node::file(b"#!y".to_vec(), 0o755, 1)
            },
        );
        let b = write(&t, 1, "l").unwrap();
        assert_ne!(a.digest, b.digest);
        assert_ne!(a.diff_id, b.diff_id);
    }
}
