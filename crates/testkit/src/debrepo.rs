//! A signed Debian repository made by the test: real `.deb` files (built by `dpkg-deb`),
//! `Packages`, `Release` and an `InRelease` clearsigned by GnuPG with the repository's own
//! key, served from `file://`. Tests then break it in one precise way at a time.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::gpg::Gpg;
use crate::run;

/// One package to build.
#[derive(Debug, Clone, Default)]
pub struct TestPackage {
    pub name: String,
    pub version: String,
    pub depends: Option<String>,
    /// (path, contents, mode)
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// (path, target)
    pub symlinks: Vec<(String, String)>,
}

impl TestPackage {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            ..Self::default()
        }
    }

    pub fn depends(mut self, depends: &str) -> Self {
        self.depends = Some(depends.to_owned());
        self
    }

    pub fn file(mut self, path: &str, contents: &[u8], mode: u32) -> Self {
        self.files.push((path.to_owned(), contents.to_vec(), mode));
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.symlinks.push((path.to_owned(), target.to_owned()));
        self
    }
}

/// A repository under construction.
#[derive(Debug)]
pub struct DebRepo {
    root: tempfile::TempDir,
    pub gpg: Gpg,
    /// Fingerprint of the repository's signing key.
    pub key: String,
    debs: Vec<(TestPackage, String)>,
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    let out = run(Command::new("sha256sum").arg(path))?;
    Ok(String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .context("sha256sum output")?
        .to_owned())
}

impl DebRepo {
    pub fn new() -> anyhow::Result<Self> {
        let gpg = Gpg::new()?;
        let key = gpg.generate("cnpg-rs test archive <archive@example.org>", "ed25519", "1y", None)?;
        Ok(Self {
            root: tempfile::tempdir()?,
            gpg,
            key,
            debs: Vec::new(),
        })
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The repository's base URI.
    pub fn uri(&self) -> String {
        format!("file://{}", self.root.path().display())
    }

    /// Builds `pkg` into the pool with `dpkg-deb`.
    pub fn add(&mut self, pkg: TestPackage) -> anyhow::Result<PathBuf> {
        let stage = tempfile::tempdir()?;
        let debian = stage.path().join("DEBIAN");
        std::fs::create_dir_all(&debian)?;
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: cnpg-rs tests <tests@example.org>\nDescription: test package {}\n",
            pkg.name, pkg.version, pkg.name
        );
        if let Some(depends) = &pkg.depends {
            writeln!(control, "Depends: {depends}")?;
        }
        std::fs::write(debian.join("control"), control)?;
        for (path, contents, mode) in &pkg.files {
            let target = stage.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().context("file path has a parent")?)?;
            std::fs::write(&target, contents)?;
            std::fs::File::open(&target)?.set_permissions(std::fs::Permissions::from_mode(*mode))?;
        }
        for (path, link) in &pkg.symlinks {
            let target = stage.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().context("link path has a parent")?)?;
            std::os::unix::fs::symlink(link, target)?;
        }
        let pool = self.root.path().join("pool/main");
        std::fs::create_dir_all(&pool)?;
        let filename = format!("pool/main/{}_{}_amd64.deb", pkg.name, pkg.version);
        let deb = self.root.path().join(&filename);
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(stage.path())
            .arg(&deb))?;
        self.debs.push((pkg, filename));
        Ok(deb)
    }

    /// Drops `name` at `version` from the next `publish` (its file stays in the pool).
    pub fn withdraw(&mut self, name: &str, version: &str) {
        self.debs
            .retain(|(pkg, _)| !(pkg.name == name && pkg.version == version));
    }

    /// Writes `Packages`, `Release` and `InRelease` for `suite`, valid for `valid_secs` from
    /// `now` (negative: already expired), signed by `signer` (the repository key by default).
    pub fn publish(&self, suite: &str, now: u64, valid_secs: i64, signer: Option<&str>) -> anyhow::Result<()> {
        let mut packages = String::new();
        for (pkg, filename) in &self.debs {
            let path = self.root.path().join(filename);
            writeln!(
                packages,
                "Package: {}\nVersion: {}\nArchitecture: amd64",
                pkg.name, pkg.version
            )?;
            if let Some(depends) = &pkg.depends {
                writeln!(packages, "Depends: {depends}")?;
            }
            writeln!(
                packages,
                "Installed-Size: 1\nFilename: {filename}\nSize: {}\nSHA256: {}\n",
                std::fs::metadata(&path)?.len(),
                sha256(&path)?
            )?;
        }
        let index_dir = self.root.path().join(format!("dists/{suite}/main/binary-amd64"));
        std::fs::create_dir_all(&index_dir)?;
        let index = index_dir.join("Packages");
        std::fs::write(&index, &packages)?;
        let until = now.checked_add_signed(valid_secs).context("valid-until")?;
        let release = format!(
            "Origin: cnpg-rs tests\nSuite: {suite}\nCodename: {suite}\nDate: {}\nValid-Until: {}\nArchitectures: amd64\nComponents: main\nSHA256:\n {} {} main/binary-amd64/Packages\n",
            rfc2822(now)?,
            rfc2822(until)?,
            sha256(&index)?,
            packages.len()
        );
        let dists = self.root.path().join(format!("dists/{suite}"));
        std::fs::write(dists.join("Release"), &release)?;
        let signed = self.gpg.clearsign(signer.unwrap_or(&self.key), &release, None)?;
        std::fs::write(dists.join("InRelease"), signed)?;
        Ok(())
    }

    /// A spec directory trusting this repository's key, with one distribution `test` made of
    /// `suite`, and the given `images.yaml`.
    pub fn spec(&self, suite: &str, images_yaml: &str) -> anyhow::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("keys"))?;
        std::fs::write(dir.path().join("keys/test.asc"), self.gpg.export(&self.key)?)?;
        std::fs::write(
            dir.path().join("repositories.yaml"),
            format!(
                "repositories:\n  test:\n    description: test archive\n    keys:\n      - file: keys/test.asc\n        fingerprint: {}\n",
                self.key
            ),
        )?;
        std::fs::write(
            dir.path().join("distributions.yaml"),
            format!(
                "distributions:\n  test:\n    os_release: {{id: debian, version_codename: test, pretty_name: test}}\n    sources:\n      - {{repository: test, suite: {suite}, components: [main]}}\n"
            ),
        )?;
        std::fs::write(dir.path().join("images.yaml"), images_yaml)?;
        Ok(dir)
    }

    /// A site file pointing `test` at this repository.
    pub fn site(&self) -> anyhow::Result<tempfile::NamedTempFile> {
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(
            &mut file,
            format!("repositories:\n  test: {{ uri: '{}' }}\n", self.uri()).as_bytes(),
        )?;
        Ok(file)
    }
}

/// The RFC 2822 date of a Unix time, as `date -R` writes it.
pub fn rfc2822(secs: u64) -> anyhow::Result<String> {
    let out = run(Command::new("date")
        .env("LC_ALL", "C")
        .args(["-u", "-R", "-d", &format!("@{secs}")]))?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}
