//! A throw-away GnuPG home for tests: generate keys, export them, clearsign text. This is the
//! independent implementation our verifier is checked against.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use crate::run;

/// A private GnuPG home directory, removed (and its agent stopped) on drop.
#[derive(Debug)]
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> anyhow::Result<Self> {
        // The agent's socket path must stay short: keep the home directly under /tmp.
        let home = tempfile::Builder::new().prefix("gpg").tempdir_in("/tmp")?;
        Ok(Self { home })
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    fn gpg(&self, faked_time: Option<&str>) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        if let Some(time) = faked_time {
            cmd.args(["--faked-system-time", time]);
        }
        cmd
    }

    /// Generates a primary key (`algo`: `rsa3072`, `ed25519`, ...) able to sign, optionally
    /// at a faked time (`20200101T000000!`), expiring after `expire` (`1y`, `1d`, `never`).
    /// Returns its fingerprint.
    pub fn generate(&self, uid: &str, algo: &str, expire: &str, faked_time: Option<&str>) -> anyhow::Result<String> {
        run(self
            .gpg(faked_time)
            .args(["--quick-gen-key", uid, algo, "sign", expire]))?;
        self.fingerprints(uid)?.into_iter().next().context("no key generated")
    }

    /// Adds a signing subkey to `primary` and returns the subkey's fingerprint.
    pub fn add_signing_subkey(&self, primary: &str, algo: &str, expire: &str) -> anyhow::Result<String> {
        run(self.gpg(None).args(["--quick-add-key", primary, algo, "sign", expire]))?;
        self.fingerprints(primary)?
            .into_iter()
            .last()
            .context("no subkey added")
    }

    /// Revokes the subkey `subkey` of `primary`.
    pub fn revoke_subkey(&self, primary: &str, subkey: &str) -> anyhow::Result<()> {
        // `--quick-revoke-sig` does not cover subkeys; drive --edit-key through its command fd.
        let list = self.fingerprints(primary)?;
        let index = list.iter().position(|f| f == subkey).context("subkey not found")?;
        let script = format!("key {index}\nrevkey\ny\n0\n\ny\nsave\n");
        let mut cmd = self.gpg(None);
        cmd.args(["--command-fd", "0", "--edit-key", primary]);
        let mut child = cmd.stdin(std::process::Stdio::piped()).spawn()?;
        std::io::Write::write_all(child.stdin.as_mut().context("stdin")?, script.as_bytes())?;
        let status = child.wait()?;
        anyhow::ensure!(status.success(), "gpg --edit-key revkey failed");
        Ok(())
    }

    /// Fingerprints of the primary key and its subkeys matching `query`, in listing order.
    pub fn fingerprints(&self, query: &str) -> anyhow::Result<Vec<String>> {
        let out = run(self.gpg(None).args(["--with-colons", "--list-keys", query]))?;
        Ok(String::from_utf8(out.stdout)?
            .lines()
            .filter(|l| l.starts_with("fpr:"))
            .filter_map(|l| l.split(':').nth(9).map(str::to_owned))
            .collect())
    }

    /// The armored public certificate of `key`.
    pub fn export(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        Ok(run(self.gpg(None).args(["--armor", "--export", key]))?.stdout)
    }

    /// Clearsigns `text` with exactly the key `signer` (a fingerprint; subkeys allowed).
    pub fn clearsign(&self, signer: &str, text: &str, faked_time: Option<&str>) -> anyhow::Result<String> {
        let dir = tempfile::tempdir()?;
        let input = dir.path().join("in");
        std::fs::write(&input, text)?;
        let output = dir.path().join("in.asc");
        run(self
            .gpg(faked_time)
            .args([
                "--digest-algo",
                "SHA256",
                "--local-user",
                &format!("{signer}!"),
                "--clearsign",
                "--output",
            ])
            .arg(&output)
            .arg(&input))?;
        Ok(std::fs::read_to_string(output)?)
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // Best effort: a leftover agent exits on its own once its home is gone.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}
