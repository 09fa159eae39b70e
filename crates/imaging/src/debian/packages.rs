//! `Packages` indexes: the binary packages of one suite, component and architecture.

use super::Error;
use super::control::paragraphs;
use super::relation::{self, Alternative};

/// One binary package as its index describes it.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub multi_arch: Option<String>,
    /// Source package name and version (the binary's own when the index omits them).
    pub source: String,
    pub source_version: String,
    /// Path of the .deb relative to the repository root.
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Installed size in KiB.
    pub installed_size: u64,
    pub pre_depends: Option<String>,
    pub depends: Option<String>,
    pub conflicts: Option<String>,
    pub breaks: Option<String>,
    pub provides: Vec<Alternative>,
    /// The paragraph as the index wrote it.
    pub stanza: String,
}

impl Package {
    /// `name version arch`, how messages name a package.
    pub fn id(&self) -> String {
        format!("{} {} {}", self.name, self.version, self.architecture)
    }
}

/// Parses every paragraph of a `Packages` index.
pub fn parse(text: &str) -> Result<Vec<Package>, Error> {
    let mut out = Vec::new();
    for p in paragraphs(text)? {
        let name = p.require("Package")?.to_owned();
        let version = p.require("Version")?.to_owned();
        let (source, source_version) = match p.get("Source") {
            Some(src) => match src.split_once('(') {
                Some((n, v)) => (n.trim().to_owned(), v.trim_end_matches(')').trim().to_owned()),
                None => (src.trim().to_owned(), version.clone()),
            },
            None => (name.clone(), version.clone()),
        };
        let sha256 = p.require("SHA256")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Control(format!("package {name} has a malformed SHA256")));
        }
        let number = |field: &str| -> Result<u64, Error> {
            p.get(field)
                .map(|v| {
                    v.parse()
                        .map_err(|_| Error::Control(format!("package {name} has a bad {field}")))
                })
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let provides = match p.get("Provides") {
            Some(field) => relation::parse(field)?.into_iter().flatten().collect(),
            None => Vec::new(),
        };
        let filename = p.require("Filename")?.to_owned();
        if filename.split('/').any(|c| c == ".." || c.is_empty()) || filename.starts_with('/') {
            return Err(Error::Control(format!(
                "package {name} has an unsafe Filename `{filename}`"
            )));
        }
        out.push(Package {
            architecture: p.require("Architecture")?.to_owned(),
            multi_arch: p.get("Multi-Arch").map(str::to_owned),
            source,
            source_version,
            filename,
            size: number("Size")?,
            sha256,
            installed_size: number("Installed-Size")?,
            pre_depends: p.get("Pre-Depends").map(str::to_owned),
            depends: p.get("Depends").map(str::to_owned),
            conflicts: p.get("Conflicts").map(str::to_owned),
            breaks: p.get("Breaks").map(str::to_owned),
            provides,
            stanza: p.text.to_owned(),
            name,
            version,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "Package: postgresql-18\nSource: postgresql-18 (18.6-3)\nVersion: 18.6-3+b1\nArchitecture: amd64\nInstalled-Size: 60000\nDepends: libc6 (>= 2.43), locales | locales-all\nProvides: postgresql-contrib-18\nFilename: pool/main/p/postgresql-18/postgresql-18_18.6-3+b1_amd64.deb\nSize: 19000000\nSHA256: 00000000000000000000000000000000000000000000000000000000000000aa\n\nPackage: tzdata\nVersion: 2026a-1\nArchitecture: all\nFilename: pool/main/t/tzdata/tzdata_2026a-1_all.deb\nSize: 1\nSHA256: 00000000000000000000000000000000000000000000000000000000000000bb\n";

    #[test]
    fn reads_fields_source_and_provides() {
        let pkgs = parse(INDEX).unwrap();
        assert_eq!(pkgs.len(), 2);
        let pg = &pkgs[0];
        assert_eq!(
            (pg.source.as_str(), pg.source_version.as_str()),
            ("postgresql-18", "18.6-3")
        );
        assert_eq!(pg.provides[0].name, "postgresql-contrib-18");
        assert_eq!(pg.installed_size, 60_000);
        assert!(pg.stanza.starts_with("Package: postgresql-18\n") && pg.stanza.ends_with("aa\n"));
        assert_eq!(
            (pkgs[1].source.as_str(), pkgs[1].source_version.as_str()),
            ("tzdata", "2026a-1")
        );
    }

    #[test]
    fn unsafe_paths_and_bad_hashes_are_refused() {
        let evil = INDEX.replace("pool/main/t/tzdata/", "../../etc/");
        assert!(parse(&evil).unwrap_err().to_string().contains("unsafe Filename"));
        let short = INDEX.replace("00000000000000000000000000000000000000000000000000000000000000bb", "bb");
        assert!(parse(&short).unwrap_err().to_string().contains("malformed SHA256"));
    }
}
