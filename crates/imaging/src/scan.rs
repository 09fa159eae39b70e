//! The image scanner: Dockle's checkpoints that apply to an image's config and filesystem,
//! and ours. It works on any image we can read (our own build before anything is written,
//! an OCI layout, a docker archive). A FATAL or WARN finding fails the image.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::elf;
use crate::oci::{ImageConfig, LABEL_SHELL};
use crate::tree::{Kind, Tree};

/// Severity, as Dockle orders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Info,
    Warn,
    Fatal,
}

/// One failed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub level: Level,
    pub title: &'static str,
    pub details: Vec<String>,
}

/// The verdict on one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `pass` unless a finding is WARN or FATAL.
    pub scan: &'static str,
    pub findings: Vec<Finding>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.scan == "pass"
    }
}

/// The only shell an image may declare, and where.
const ALLOWED_SHELL: &str = "usr/bin/dash";
const SHELLS: &[&str] = &[
    "sh", "bash", "rbash", "dash", "ash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "csh", "tcsh", "fish", "yash",
    "posh", "busybox",
];
const INTERPRETERS: &[&str] = &[
    "perl", "python", "python2", "python3", "ruby", "node", "nodejs", "php", "lua", "luajit", "tclsh", "wish", "awk",
    "gawk", "mawk", "nawk", "java", "jshell", "guile", "expect",
];
const PACKAGE_MANAGERS: &[&str] = &[
    "dpkg",
    "dpkg-deb",
    "dpkg-query",
    "apt",
    "apt-get",
    "apt-cache",
    "aptitude",
    "rpm",
    "yum",
    "dnf",
    "microdnf",
    "apk",
    "pip",
    "pip3",
    "zypper",
    "pacman",
    "gem",
    "npm",
];
const SECRET_NAMES: &[&str] = &[
    "credentials.json",
    "credential.json",
    "credentials",
    "credential",
    "password.txt",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "secret_token.rb",
    "carrierwave.rb",
    "omniauth.rb",
    "settings.py",
    "database.yml",
    "credentials.xml",
    ".env",
];
const SECRET_EXTENSIONS: &[&str] = &[
    ".secret",
    ".ovpn",
    ".private_key",
    ".cscfg",
    ".rdp",
    ".mdf",
    ".sdf",
    ".bek",
    ".tpm",
    ".fve",
    ".jks",
    ".psafe3",
    ".agilekeychain",
    ".keychain",
    ".pcap",
    ".gnucache",
];
const SECRET_WORDS: &[&str] = &["PASS", "PASSWD", "PASSWORD", "SECRET", "KEY", "ACCESS", "TOKEN"];
const UNNECESSARY: &[&str] = &["Dockerfile", "docker-compose.yml", ".vimrc", ".DS_Store"];
const UNNECESSARY_DIRS: &[&str] = &[".cache", ".aws", ".azure", ".gcp", ".git", ".vscode", ".idea", ".npm"];

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn executable(kind: &Kind, mode: u32) -> bool {
    match kind {
        Kind::Symlink(_) => true,
        Kind::File(_) | Kind::Hardlink(_) => mode & 0o111 != 0,
        Kind::Dir => false,
    }
}

/// Scans an image's filesystem and config.
pub fn scan(tree: &Tree, config: &ImageConfig) -> Verdict {
    let mut findings = Vec::new();
    let mut push = |code, level, title, details: Vec<String>| {
        if !details.is_empty() {
            findings.push(Finding {
                code,
                level,
                title,
                details,
            });
        }
    };

    // CIS-DI-0001 and ours: a numeric, non-root user (Kubernetes can only check numbers).
    let user = config.config.user.trim();
    let uid = user.split(':').next().unwrap_or_default();
    let root = user.is_empty() || uid == "root" || uid.parse::<u32>() == Ok(0);
    push(
        "CIS-DI-0001",
        Level::Warn,
        "Create a user for the container",
        if root {
            vec![format!("runs as `{user}`, which is root")]
        } else {
            vec![]
        },
    );
    let numeric = !user.is_empty() && user.split(':').all(|p| p.parse::<u32>().is_ok());
    push(
        "CNPG-DI-0001",
        Level::Warn,
        "Run as a numeric user:group",
        if numeric || root {
            vec![]
        } else {
            vec![format!("`{user}` is not numeric")]
        },
    );

    // CIS-DI-0006: no HEALTHCHECK (Kubernetes probes are used instead).
    push(
        "CIS-DI-0006",
        Level::Info,
        "Add HEALTHCHECK instruction",
        if config.config.healthcheck.is_none() {
            vec!["no HEALTHCHECK (Kubernetes probes are used)".into()]
        } else {
            vec![]
        },
    );

    // History-based Dockerfile checks: we write our own history, but read it anyway.
    let history: Vec<&str> = config.history.iter().map(|h| h.created_by.as_str()).collect();
    let hits = |f: &dyn Fn(&str) -> bool| {
        history
            .iter()
            .filter(|h| f(h))
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
    };
    push(
        "CIS-DI-0007",
        Level::Fatal,
        "Do not use update instructions alone",
        hits(&|h| (h.contains("apt-get update") || h.contains("apt update")) && !h.contains("install")),
    );
    push(
        "CIS-DI-0009",
        Level::Fatal,
        "Use COPY instead of ADD",
        hits(&|h| h.contains("ADD ") && (h.contains(" in ") || h.contains("buildkit"))),
    );
    push(
        "DKL-DI-0001",
        Level::Fatal,
        "Avoid sudo command",
        hits(&|h| h.split_whitespace().any(|w| w == "sudo")),
    );
    push(
        "DKL-DI-0003",
        Level::Warn,
        "Avoid 'apt-get dist-upgrade'",
        hits(&|h| h.contains("dist-upgrade")),
    );
    push(
        "DKL-DI-0004",
        Level::Fatal,
        "Use 'apk add' with --no-cache",
        hits(&|h| h.contains("apk add") && !h.contains("--no-cache")),
    );
    push(
        "DKL-DI-0005",
        Level::Fatal,
        "Clear apt-get caches",
        hits(&|h| h.contains("apt-get install") && !h.contains("/var/lib/apt/lists")),
    );

    // DKL-DI-0002: sensitive directories mounted as volumes.
    let volumes: Vec<String> = config
        .config
        .volumes
        .keys()
        .filter(|v| ["/dev", "/proc", "/sys"].iter().any(|s| v.trim_end_matches('/') == *s))
        .cloned()
        .collect();
    push(
        "DKL-DI-0002",
        Level::Fatal,
        "Avoid sensitive directory mounting",
        volumes,
    );

    // CIS-DI-0010 and ours: credentials in files or in the environment.
    let env_secrets: Vec<String> = config
        .config
        .env
        .iter()
        .filter_map(|e| e.split_once('=').map(|(k, _)| k))
        .filter(|k| SECRET_WORDS.iter().any(|w| k.to_ascii_uppercase().contains(w)))
        .map(|k| format!("environment variable {k}"))
        .collect();
    let mut secret_files = Vec::new();
    let mut private_keys = Vec::new();
    let mut setid = Vec::new();
    let mut writable = Vec::new();
    let mut unnecessary = Vec::new();
    let mut shells = Vec::new();
    let mut interpreters = Vec::new();
    let mut managers = Vec::new();
    let declared = config.config.labels.get(LABEL_SHELL);
    for (path, node) in &tree.nodes {
        let name = basename(path);
        if SECRET_NAMES.contains(&name) || SECRET_EXTENSIONS.iter().any(|e| name.ends_with(e)) {
            secret_files.push(format!("/{path}"));
        }
        let small = node.data().filter(|d| d.len() < 1 << 20);
        if small.is_some_and(|data| contains(data, b"PRIVATE KEY-----") && contains(data, b"-----BEGIN")) {
            private_keys.push(format!("/{path}"));
        }
        if node.mode & 0o6000 != 0 && !matches!(node.kind, Kind::Symlink(_)) {
            setid.push(format!("/{path} (mode {:o})", node.mode));
        }
        let sticky_dir = node.kind == Kind::Dir && node.mode & 0o1000 != 0;
        if node.mode & 0o002 != 0 && !matches!(node.kind, Kind::Symlink(_)) && !sticky_dir {
            writable.push(format!("/{path} (mode {:o})", node.mode));
        }
        if UNNECESSARY.contains(&name) || path.split('/').any(|c| UNNECESSARY_DIRS.contains(&c)) {
            unnecessary.push(format!("/{path}"));
        }
        if executable(&node.kind, node.mode) {
            let allowed_shell = declared.is_some()
                && (path == ALLOWED_SHELL
                    || (path == "usr/bin/sh" && tree.resolve(path).as_deref() == Some(ALLOWED_SHELL)));
            if SHELLS.contains(&name) && !allowed_shell {
                shells.push(format!("/{path}"));
            }
            let stem = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
            if INTERPRETERS.contains(&name) || INTERPRETERS.contains(&stem) {
                interpreters.push(format!("/{path}"));
            }
            if PACKAGE_MANAGERS.contains(&name) {
                managers.push(format!("/{path}"));
            }
        }
    }
    if let Some(label) = declared.filter(|l| !l.starts_with(&format!("/{ALLOWED_SHELL}"))) {
        shells.push(format!(
            "declared shell `{label}`: only /{ALLOWED_SHELL} may be declared"
        ));
    }
    push(
        "CIS-DI-0010",
        Level::Fatal,
        "Do not store credential in environment variables/files",
        [env_secrets, secret_files].concat(),
    );
    push(
        "CIS-DI-0008",
        Level::Fatal,
        "Confirm safety of setuid/setgid files",
        setid,
    );
    push(
        "CNPG-DI-0002",
        Level::Fatal,
        "No shell (except dash as /bin/sh where declared)",
        shells,
    );
    push("CNPG-DI-0003", Level::Fatal, "No interpreters", interpreters);
    push("CNPG-DI-0004", Level::Fatal, "No package manager", managers);
    push(
        "CNPG-DI-0005",
        Level::Fatal,
        "No world-writable files outside sticky directories",
        writable,
    );
    push("CNPG-DI-0006", Level::Fatal, "No private keys", private_keys);
    push("DKL-LI-0003", Level::Info, "Only put necessary files", unnecessary);

    // DKL-LI-0001 / 0002: account files.
    let empty_passwords = tree
        .lookup("etc/shadow")
        .and_then(|n| n.data())
        .map(|d| {
            String::from_utf8_lossy(d)
                .lines()
                .filter(|l| l.split(':').nth(1) == Some(""))
                .map(|l| l.split(':').next().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    push("DKL-LI-0001", Level::Fatal, "Avoid empty password", empty_passwords);
    push(
        "DKL-LI-0002",
        Level::Fatal,
        "Be unique UID/GROUPs",
        [
            duplicates(tree, "etc/passwd", "UID"),
            duplicates(tree, "etc/group", "GID"),
        ]
        .concat(),
    );

    // Ours: every ELF file finds its interpreter and shared libraries.
    push(
        "CNPG-DI-0008",
        Level::Fatal,
        "Every shared library an ELF file needs is present",
        missing_libraries(tree, &config.architecture),
    );

    findings.sort_by(|a, b| b.level.cmp(&a.level).then_with(|| a.code.cmp(b.code)));
    let failed = findings.iter().any(|f| f.level >= Level::Warn);
    Verdict {
        scan: if failed { "fail" } else { "pass" },
        findings,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn duplicates(tree: &Tree, file: &str, what: &str) -> Vec<String> {
    let Some(data) = tree.lookup(file).and_then(|n| n.data()) else {
        return Vec::new();
    };
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(data).lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let (Some(name), Some(id)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        if let Some(other) = seen.insert((*id).to_owned(), (*name).to_owned()) {
            out.push(format!("/{file}: {what} {id} is shared by {other} and {name}"));
        }
    }
    out
}

/// ELF files whose interpreter or `DT_NEEDED` libraries cannot be found.
pub fn missing_libraries(tree: &Tree, architecture: &str) -> Vec<String> {
    let triplet = match architecture {
        "arm64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "ppc64le" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    let defaults = [
        format!("lib/{triplet}"),
        format!("usr/lib/{triplet}"),
        "lib64".into(),
        "usr/lib64".into(),
        "lib".into(),
        "usr/lib".into(),
    ];
    let mut problems = BTreeSet::new();
    for (path, node) in &tree.nodes {
        let Some(dynamic) = node.data().filter(|d| elf::is_elf(d)).and_then(elf::dynamic) else {
            continue;
        };
        if let Some(interp) = dynamic.interpreter.as_ref().filter(|i| tree.lookup(i).is_none()) {
            problems.insert(format!("/{path}: interpreter {interp} is missing"));
        }
        let origin = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        let search: Vec<String> = dynamic
            .runpath
            .iter()
            .map(|r| {
                r.replace("$ORIGIN", &format!("/{origin}"))
                    .replace("${ORIGIN}", &format!("/{origin}"))
            })
            .chain(defaults.iter().cloned())
            .collect();
        for lib in &dynamic.needed {
            let found = if lib.contains('/') {
                tree.lookup(lib).is_some()
            } else {
                search
                    .iter()
                    .any(|dir| tree.lookup(&format!("{}/{lib}", dir.trim_start_matches('/'))).is_some())
            };
            if !found {
                problems.insert(format!("/{path}: needs {lib}, which is not in the image"));
            }
        }
    }
    problems.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{RootFs, RunConfig};
    use crate::tree::Node;

    fn config(user: &str) -> ImageConfig {
        ImageConfig {
            created: "1970-01-01T00:00:00Z".into(),
            architecture: "amd64".into(),
            variant: None,
            os: "linux".into(),
            config: RunConfig {
                user: user.into(),
                ..RunConfig::default()
            },
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![],
            },
            history: vec![],
        }
    }

    fn codes(v: &Verdict) -> Vec<&str> {
        v.findings
            .iter()
            .filter(|f| f.level >= Level::Warn)
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn a_clean_tree_passes_and_root_fails_by_name_or_number() {
        let mut t = Tree::default();
        t.insert(
            "etc/passwd",
            Node::file(b"root:x:0:0::/:/x\nnonroot:x:65532:65532::/:/x\n".to_vec(), 0o644, 0),
        );
        t.insert("tmp", Node::dir(0o1777, 0));
        assert!(scan(&t, &config("65532:65532")).passed());
        for root in ["", "root", "0", "0:0", "root:root"] {
            assert_eq!(codes(&scan(&t, &config(root))), ["CIS-DI-0001"], "{root:?}");
        }
        assert_eq!(codes(&scan(&t, &config("nonroot"))), ["CNPG-DI-0001"]);
    }

    #[test]
    fn shells_interpreters_package_managers_setuid_writable_and_keys_are_fatal() {
        let mut t = Tree::default();
        t.insert("usr/bin/bash", Node::file(b"x".to_vec(), 0o755, 0));
        t.insert("usr/bin/python3.11", Node::file(b"x".to_vec(), 0o755, 0));
        t.insert("usr/bin/dpkg", Node::file(b"x".to_vec(), 0o755, 0));
        t.insert("usr/bin/su", Node::file(b"x".to_vec(), 0o4755, 0));
        t.insert("var/spool", Node::dir(0o777, 0));
        t.insert(
            "etc/ssl/private/k.pem",
            Node::file(b"-----BEGIN PRIVATE KEY-----\nx".to_vec(), 0o600, 0),
        );
        t.insert("home/x/.env", Node::file(b"A=1".to_vec(), 0o600, 0));
        let v = scan(&t, &config("26:26"));
        let mut got = codes(&v);
        got.sort();
        assert_eq!(
            got,
            [
                "CIS-DI-0008",
                "CIS-DI-0010",
                "CNPG-DI-0002",
                "CNPG-DI-0003",
                "CNPG-DI-0004",
                "CNPG-DI-0005",
                "CNPG-DI-0006"
            ]
        );
        assert_eq!(v.scan, "fail");
    }

    #[test]
    fn only_a_declared_dash_is_accepted_as_sh() {
        let mut t = Tree::default();
        t.insert("usr/bin/dash", Node::file(b"x".to_vec(), 0o755, 0));
        t.insert("usr/bin/sh", Node::symlink("dash", 0));
        assert_eq!(codes(&scan(&t, &config("26:26"))), ["CNPG-DI-0002"]);
        let mut declared = config("26:26");
        declared
            .config
            .labels
            .insert(LABEL_SHELL.into(), "/usr/bin/dash (initdb)".into());
        assert!(scan(&t, &declared).passed());
        t.insert("usr/bin/bash", Node::file(b"x".to_vec(), 0o755, 0));
        assert_eq!(codes(&scan(&t, &declared)), ["CNPG-DI-0002"]);
    }

    #[test]
    fn secrets_in_the_environment_and_duplicate_ids_are_fatal() {
        let mut t = Tree::default();
        t.insert(
            "etc/passwd",
            Node::file(b"a:x:26:26::/:/x\nb:x:26:26::/:/x\n".to_vec(), 0o644, 0),
        );
        let mut c = config("26:26");
        c.config.env = vec!["PGPASSWORD=x".into(), "PATH=/usr/bin".into()];
        let v = scan(&t, &c);
        let mut got = codes(&v);
        got.sort();
        assert_eq!(got, ["CIS-DI-0010", "DKL-LI-0002"]);
    }
}
