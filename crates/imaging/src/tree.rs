//! The image filesystem in memory: path → node, each node tagged with the layer it goes in.
//! Paths are normalized (no leading `/`); lookups follow symbolic links like the kernel does.

use std::collections::BTreeMap;
use std::sync::Arc;

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Arc<Vec<u8>>),
    Symlink(String),
    Hardlink(String),
}

/// One filesystem entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// Index of the layer this entry is written in.
    pub layer: usize,
}

impl Node {
    pub fn dir(mode: u32, layer: usize) -> Self {
        Self {
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            layer,
        }
    }

    pub fn file(data: Vec<u8>, mode: u32, layer: usize) -> Self {
        Self {
            kind: Kind::File(Arc::new(data)),
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            layer,
        }
    }

    pub fn symlink(target: &str, layer: usize) -> Self {
        Self {
            kind: Kind::Symlink(target.to_owned()),
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime: 0,
            layer,
        }
    }

    /// The regular file's bytes, if it is one.
    pub fn data(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::File(data) => Some(data),
            _ => None,
        }
    }
}

/// The whole filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
}

/// The most symbolic links followed in one lookup (as Linux).
const MAX_LINKS: usize = 40;

impl Tree {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path.trim_start_matches('/'))
    }

    pub fn insert(&mut self, path: &str, node: Node) -> Option<Node> {
        self.nodes.insert(path.trim_start_matches('/').to_owned(), node)
    }

    /// The canonical path `path` refers to after following every symbolic link (in the
    /// directories leading to it and the last component), if it exists.
    pub fn resolve(&self, path: &str) -> Option<String> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_owned)
            .collect();
        let mut current: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(component);
            let joined = current.join("/");
            match self.nodes.get(&joined).map(|n| &n.kind) {
                // A directory may be implicit (only its children recorded); a missing last
                // component means the path does not exist.
                None if pending.is_empty() => return None,
                None => {}
                Some(Kind::Symlink(target)) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return None;
                    }
                    current.pop();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(target.split('/').filter(|c| !c.is_empty()).rev().map(str::to_owned));
                }
                Some(_) => {}
            }
        }
        Some(current.join("/"))
    }

    /// The node `path` refers to, links followed.
    pub fn lookup(&self, path: &str) -> Option<&Node> {
        let canonical = self.resolve(path)?;
        match self.nodes.get(&canonical) {
            Some(Node {
                kind: Kind::Hardlink(target),
                ..
            }) => self.nodes.get(target),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let mut t = Tree::default();
        t.insert("usr", Node::dir(0o755, 0));
        t.insert("usr/lib", Node::dir(0o755, 0));
        t.insert("lib", Node::symlink("usr/lib", 0));
        t.insert("lib64", Node::symlink("/usr/lib64", 0));
        t.insert("usr/lib64", Node::dir(0o755, 0));
        t.insert("usr/lib/x86_64-linux-gnu", Node::dir(0o755, 0));
        t.insert(
            "usr/lib/x86_64-linux-gnu/libc.so.6",
            Node::file(b"elf".to_vec(), 0o644, 0),
        );
        t.insert(
            "usr/lib64/ld-linux-x86-64.so.2",
            Node::symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 0),
        );
        t.insert(
            "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            Node::file(b"ld".to_vec(), 0o755, 0),
        );
        t.insert("loop", Node::symlink("loop", 0));
        t
    }

    #[test]
    fn follows_links_in_directories_and_at_the_end() {
        let t = tree();
        assert_eq!(
            t.resolve("/lib/x86_64-linux-gnu/libc.so.6").as_deref(),
            Some("usr/lib/x86_64-linux-gnu/libc.so.6")
        );
        assert_eq!(
            t.lookup("/lib64/ld-linux-x86-64.so.2").and_then(Node::data),
            Some(&b"ld"[..])
        );
        assert_eq!(t.resolve("usr/lib/../lib64").as_deref(), Some("usr/lib64"));
    }

    #[test]
    fn missing_paths_and_link_loops_resolve_to_nothing() {
        let t = tree();
        assert_eq!(t.resolve("lib/libmissing.so"), None);
        assert_eq!(t.resolve("loop/x"), None);
    }
}
