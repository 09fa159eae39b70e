//! Assembly: the packages of a lock, unpacked into one in-memory filesystem without running
//! any maintainer script, plus what those scripts (and `useradd`, `update-ca-certificates`,
//! `dpkg`) would have left behind: users, the CA bundle, `/etc/localtime`, `/bin/sh` where
//! allowed, the image's own directories, and the dpkg database scanners read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::deb::{self, Deb};
use crate::digest::sha256_file;
use crate::lock::{FileRules, Lock, LockedPackage};
use crate::spec::{matches, parse_mode, parse_owner};
use crate::tree::{Kind, Node, Tree};

/// Assembly failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("package {package}")]
    Deb { package: String, source: deb::Error },
    #[error("package {package}: hard link {path} points at {target}, which the package does not contain")]
    Hardlink {
        package: String,
        path: String,
        target: String,
    },
    #[error("binary {name}: failed to read {}", .path.display())]
    Binary {
        name: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("binary {name} changed since the lock was written (sha256 {actual}, lock says {expected})")]
    BinaryChanged {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("the image declares {0} as its shell, but no package installs it")]
    ShellMissing(String),
    #[error("bad directory entry for {0} in the lock")]
    Directory(String),
}

/// The filesystem of one image and how it splits into layers.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub tree: Tree,
    /// Layer names by index: `skeleton`, the package layers, `app` (if any), `metadata`.
    pub layers: Vec<String>,
    /// Timestamps are clamped to this (SOURCE_DATE_EPOCH, or the newest file of the set).
    pub epoch: u64,
    /// Paths whose setuid/setgid bits were removed.
    pub stripped: Vec<String>,
}

/// The usr-merged layout: these top-level directories are links into `/usr`.
const MERGED: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

fn merge_usr(path: &str) -> String {
    let first = path.split('/').next().unwrap_or_default();
    if MERGED.contains(&first) {
        format!("usr/{path}")
    } else {
        path.to_owned()
    }
}

/// Whether `rules` keep `path` of `package`.
fn kept(rules: &FileRules, package: &str, path: &str) -> bool {
    if let Some(prefixes) = rules.only_paths.get(package) {
        let inside = prefixes.iter().any(|p| {
            let p = p.trim_matches('/');
            path == p || path.starts_with(&format!("{p}/")) || p.starts_with(&format!("{path}/"))
        });
        if !inside {
            return false;
        }
    }
    let dropped = rules.drop.iter().any(|r| matches(&r.pattern, path));
    !dropped || rules.keep.iter().any(|r| matches(&r.pattern, path))
}

/// Assembles the image of `lock` from the package files `debs` (keyed by sha256, already
/// verified) and our binaries in `binaries`.
pub fn assemble(
    lock: &Lock,
    debs: &BTreeMap<String, Vec<u8>>,
    binaries: Option<&Path>,
    epoch_override: Option<u64>,
) -> Result<Assembled, Error> {
    let packages: Vec<(usize, &LockedPackage)> = lock
        .layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.packages.iter().map(move |p| (i + 1, p)))
        .collect();
    let parsed = read_all(&packages, debs)?;
    let epoch = epoch_override.unwrap_or_else(|| {
        parsed
            .iter()
            .flat_map(|d| d.entries.iter().map(|e| e.mtime))
            .max()
            .unwrap_or_default()
    });

    let mut tree = Tree::default();
    let mut layers = vec!["skeleton".to_owned()];
    layers.extend(lock.layers.iter().map(|l| l.name.clone()));
    skeleton(&mut tree);
    let mut stripped = Vec::new();
    let mut statuses = BTreeMap::new();

    for ((layer, package), deb) in packages.iter().zip(&parsed) {
        let rules = &lock
            .layers
            .get(layer - 1)
            .map(|l| l.rules.clone())
            .unwrap_or_else(|| FileRules {
                drop: Vec::new(),
                keep: Vec::new(),
                only_paths: BTreeMap::new(),
            });
        let contents: BTreeMap<&str, &deb::Entry> = deb.entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let mut listed = BTreeSet::new();
        for entry in &deb.entries {
            let path = merge_usr(&entry.path);
            if !kept(rules, &package.name, &path) {
                continue;
            }
            let kind = match &entry.kind {
                deb::Kind::Dir => Kind::Dir,
                deb::Kind::File(data) => Kind::File(std::sync::Arc::new(data.clone())),
                deb::Kind::Symlink(target) => Kind::Symlink(target.clone()),
                // Hard links become copies: their target may sit in another layer or be dropped.
                deb::Kind::Hardlink(target) => match contents.get(target.as_str()).map(|t| &t.kind) {
                    Some(deb::Kind::File(data)) => Kind::File(std::sync::Arc::new(data.clone())),
                    _ => {
                        return Err(Error::Hardlink {
                            package: package.name.clone(),
                            path: entry.path.clone(),
                            target: target.clone(),
                        });
                    }
                },
            };
            let mut mode = entry.mode;
            if mode & 0o6000 != 0 && !matches!(kind, Kind::Symlink(_)) {
                stripped.push(path.clone());
                mode &= !0o6000;
            }
            let node = Node {
                kind,
                mode,
                uid: 0,
                gid: 0,
                mtime: entry.mtime.min(epoch),
                layer: *layer,
            };
            if let Some(existing) = tree.nodes.get(&path) {
                if existing.kind == Kind::Dir && node.kind == Kind::Dir {
                    listed.insert(path);
                    continue;
                }
                tracing::debug!(%path, package = %package.name, "path shipped by two packages; the later one wins");
            }
            tree.insert(&path, node);
            listed.insert(path);
        }
        dpkg_info(&mut tree, package, deb, &listed, *layer, epoch);
        statuses.insert(package.name.clone(), status_stanza(&deb.control));
    }

    if !lock.binaries.is_empty() {
        let layer = layers.len();
        layers.push(format!("{}:app", lock.image));
        for binary in &lock.binaries {
            let dir = binaries.unwrap_or_else(|| Path::new("."));
            let path = dir.join(&binary.name);
            let read_err = |source| Error::Binary {
                name: binary.name.clone(),
                path: path.clone(),
                source,
            };
            let (actual, _) = sha256_file(&path).map_err(read_err)?;
            if actual != binary.sha256 {
                return Err(Error::BinaryChanged {
                    name: binary.name.clone(),
                    expected: binary.sha256.clone(),
                    actual,
                });
            }
            let data = std::fs::read(&path).map_err(read_err)?;
            tree.insert(
                &format!("usr/local/bin/{}", binary.name),
                Node::file(data, 0o755, layer),
            );
        }
    }
    let metadata = layers.len();
    layers.push(format!("{}:metadata", lock.image));
    generated(&mut tree, lock, &statuses, metadata, epoch)?;
    Ok(Assembled {
        tree,
        layers,
        epoch,
        stripped,
    })
}

/// Reads the .debs on as many threads as the machine has, keeping their order.
fn read_all(packages: &[(usize, &LockedPackage)], debs: &BTreeMap<String, Vec<u8>>) -> Result<Vec<Deb>, Error> {
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .max(1);
    let chunk = packages.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Deb>, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = packages
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(_, p)| {
                            let bytes = debs.get(&p.sha256).map(Vec::as_slice).unwrap_or_default();
                            deb::read(bytes).map_err(|source| Error::Deb {
                                package: p.name.clone(),
                                source,
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(Vec::new())))
            .collect()
    });
    let mut out = Vec::with_capacity(packages.len());
    for part in results {
        out.extend(part?);
    }
    if out.len() != packages.len() {
        return Err(Error::Deb {
            package: "(reader thread)".into(),
            source: deb::Error::Format("a reader thread stopped early".into()),
        });
    }
    Ok(out)
}

/// The layout every image starts from, identical in all of them.
fn skeleton(tree: &mut Tree) {
    for dir in [
        "etc",
        "home",
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib64",
        "usr/sbin",
        "usr/local",
        "usr/local/bin",
        "var",
        "var/lib",
        "run",
    ] {
        tree.insert(dir, Node::dir(0o755, 0));
    }
    tree.insert("root", Node::dir(0o700, 0));
    tree.insert("tmp", Node::dir(0o1777, 0));
    tree.insert("var/tmp", Node::dir(0o1777, 0));
    tree.insert(
        "home/nonroot",
        Node {
            uid: 65532,
            gid: 65532,
            ..Node::dir(0o700, 0)
        },
    );
    for link in ["bin", "sbin", "lib", "lib64"] {
        tree.insert(link, Node::symlink(&format!("usr/{link}"), 0));
    }
}

/// `control` with `Status: install ok installed` after its first line, as dpkg records it.
fn status_stanza(control: &str) -> String {
    let control = control.trim_end();
    match control.split_once('\n') {
        Some((first, rest)) => format!("{first}\nStatus: install ok installed\n{rest}\n"),
        None => format!("{control}\nStatus: install ok installed\n"),
    }
}

/// dpkg's per-package records, in the package's own layer so shared layers carry them.
fn dpkg_info(tree: &mut Tree, package: &LockedPackage, deb: &Deb, listed: &BTreeSet<String>, layer: usize, epoch: u64) {
    let node = |data: String| Node {
        mtime: epoch,
        ..Node::file(data.into_bytes(), 0o644, layer)
    };
    let mut list = String::from("/.\n");
    for path in listed {
        list.push('/');
        list.push_str(path);
        list.push('\n');
    }
    let name = &package.name;
    tree.insert(&format!("var/lib/dpkg/info/{name}.list"), node(list));
    if let Some(md5sums) = &deb.md5sums {
        let filtered: String = md5sums
            .lines()
            .filter_map(|line| {
                let (sum, path) = line.split_once(char::is_whitespace)?;
                let path = merge_usr(path.trim_start());
                listed.contains(&path).then(|| format!("{sum}  {path}\n"))
            })
            .collect();
        tree.insert(&format!("var/lib/dpkg/info/{name}.md5sums"), node(filtered));
    }
    tree.insert(
        &format!("var/lib/dpkg/status.d/{name}"),
        node(status_stanza(&deb.control)),
    );
}

/// Files the builder writes itself, in the metadata layer.
fn generated(
    tree: &mut Tree,
    lock: &Lock,
    statuses: &BTreeMap<String, String>,
    layer: usize,
    epoch: u64,
) -> Result<(), Error> {
    let file = |data: String, mode: u32| Node {
        mtime: epoch,
        ..Node::file(data.into_bytes(), mode, layer)
    };
    tree.insert(
        "etc/passwd",
        file(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n\
             postgres:x:26:26:PostgreSQL administrator:/var/lib/postgresql:/usr/sbin/nologin\n\
             nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n"
                .to_owned(),
            0o644,
        ),
    );
    tree.insert(
        "etc/group",
        file("root:x:0:\npostgres:x:26:\nnonroot:x:65532:\n".to_owned(), 0o644),
    );
    tree.insert(
        "etc/nsswitch.conf",
        file("passwd: files\ngroup: files\nhosts: files dns\n".to_owned(), 0o644),
    );
    let os = &lock.os_release;
    let mut release = format!(
        "PRETTY_NAME=\"{}\"\nNAME=\"Debian GNU/Linux\"\nID={}\n",
        os.pretty_name, os.id
    );
    if let Some(v) = &os.version_id {
        release.push_str(&format!("VERSION_ID=\"{v}\"\n"));
    }
    release.push_str(&format!("VERSION_CODENAME={}\n", os.version_codename));
    tree.insert("usr/lib/os-release", file(release, 0o644));
    tree.insert(
        "etc/os-release",
        Node {
            mtime: epoch,
            ..Node::symlink("../usr/lib/os-release", layer)
        },
    );

    // update-ca-certificates: the bundle of every certificate the packages ship.
    let certs: Vec<&[u8]> = tree
        .nodes
        .iter()
        .filter(|(p, _)| p.starts_with("usr/share/ca-certificates/") && p.ends_with(".crt"))
        .filter_map(|(_, n)| n.data())
        .collect();
    if !certs.is_empty() {
        let mut bundle = Vec::new();
        for cert in certs {
            bundle.extend_from_slice(cert);
            if !cert.ends_with(b"\n") {
                bundle.push(b'\n');
            }
        }
        for dir in ["etc/ssl", "etc/ssl/certs"] {
            if tree.get(dir).is_none() {
                tree.insert(dir, Node::dir(0o755, layer));
            }
        }
        tree.insert(
            "etc/ssl/certs/ca-certificates.crt",
            Node {
                mtime: epoch,
                ..Node::file(bundle, 0o644, layer)
            },
        );
    }
    // tzdata's configuration: UTC.
    if tree.get("usr/share/zoneinfo/Etc/UTC").is_some() {
        tree.insert(
            "etc/localtime",
            Node {
                mtime: epoch,
                ..Node::symlink("/usr/share/zoneinfo/Etc/UTC", layer)
            },
        );
        tree.insert("etc/timezone", file("Etc/UTC\n".to_owned(), 0o644));
    }
    // The declared shell, as dash's maintainer script would link it.
    if let Some(shell) = &lock.config.shell {
        let binary = shell.binary.trim_start_matches('/');
        if tree.lookup(binary).is_none() {
            return Err(Error::ShellMissing(shell.binary.clone()));
        }
        let name = binary.rsplit('/').next().unwrap_or(binary);
        tree.insert(
            "usr/bin/sh",
            Node {
                mtime: epoch,
                ..Node::symlink(name, layer)
            },
        );
    }
    for dir in &lock.config.directories {
        let (uid, gid) = parse_owner(&dir.owner).ok_or_else(|| Error::Directory(dir.path.clone()))?;
        let mode = parse_mode(&dir.mode).ok_or_else(|| Error::Directory(dir.path.clone()))?;
        tree.insert(
            &dir.path,
            Node {
                uid,
                gid,
                mtime: epoch,
                ..Node::dir(mode, layer)
            },
        );
    }
    let status: String = statuses.values().map(|s| format!("{s}\n")).collect();
    tree.insert("var/lib/dpkg/status", file(status, 0o644));
    Ok(())
}
