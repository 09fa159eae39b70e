//! The oracle: Debian's `gpgv`, read the way apt reads it, plus anything it flags as an error.
//!
//! A message counts as accepted by gpgv when its status output has a good signature
//! (`GOODSIG` and a `VALIDSIG` with a SHA-2 digest, the apt rule) and nothing alarming: no
//! `BADSIG`, no `ERROR`, no `NODATA`, and an exit status of 0 or 2 (2 also covers signatures
//! by keys that are not in the keyring, which apt ignores when another one is good).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What gpgv made of one message.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub accepted: bool,
    /// Primary-key fingerprints of the good signatures.
    pub signers: Vec<String>,
    /// The signed text gpgv wrote out (only meaningful when accepted).
    pub text: Vec<u8>,
    /// The status lines, for reports.
    pub status: String,
}

/// A private, empty GnuPG home: gpgv reads only the keyring it is given.
#[derive(Debug)]
pub struct Gpgv {
    home: tempfile::TempDir,
}

impl Gpgv {
    pub fn new() -> Self {
        let home = tempfile::Builder::new().prefix("gpgv").tempdir_in("/tmp").unwrap();
        Self { home }
    }

    /// Verifies `message` (written to `work`) against the binary keyring file `keyring`.
    pub fn verify(&self, keyring: &Path, message: &[u8], work: &Path) -> Verdict {
        let input: PathBuf = work.join("message.asc");
        let output = work.join("message.out");
        std::fs::write(&input, message).unwrap();
        let _ = std::fs::remove_file(&output);
        let out = Command::new("gpgv")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--status-fd", "1", "--keyring"])
            .arg(keyring)
            .arg("--output")
            .arg(&output)
            .arg(&input)
            .stdin(Stdio::null())
            .output()
            .expect("failed to start gpgv: is it installed? (scripts/setup.sh installs gnupg)");
        let status = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = out.status.code().unwrap_or(-1);
        let mut good_ids = Vec::new();
        let mut valid = Vec::new();
        let mut alarm = false;
        for line in status.lines() {
            let mut fields = line.split_whitespace();
            if fields.next() != Some("[GNUPG:]") {
                continue;
            }
            let keyword = fields.next().unwrap_or_default();
            let rest: Vec<&str> = fields.collect();
            match keyword {
                "GOODSIG" => good_ids.push(rest.first().copied().unwrap_or_default().to_owned()),
                "VALIDSIG" => {
                    let sha2 = matches!(rest.get(7).copied(), Some("8" | "9" | "10" | "11"));
                    if sha2 {
                        valid.push((
                            rest.first().copied().unwrap_or_default().to_owned(),
                            rest.get(9).copied().unwrap_or_default().to_owned(),
                        ));
                    }
                }
                "BADSIG" | "ERROR" | "NODATA" => alarm = true,
                _ => {}
            }
        }
        let signers: Vec<String> = valid
            .iter()
            .filter(|(fpr, _)| good_ids.iter().any(|id| fpr.ends_with(id.as_str())))
            .map(|(_, primary)| primary.clone())
            .collect();
        let accepted = !signers.is_empty() && !alarm && (code == 0 || code == 2);
        // gpgv writes each signed line with the line end it had; what is signed (and what we
        // return) has no trailing blanks and `\n` line ends.
        let text = if accepted {
            let raw = std::fs::read(&output).unwrap_or_default();
            let mut text = Vec::new();
            for line in raw.split_inclusive(|b| *b == b'\n') {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let end = line
                    .iter()
                    .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
                    .map_or(0, |p| p + 1);
                text.extend_from_slice(&line[..end]);
                text.push(b'\n');
            }
            text
        } else {
            Vec::new()
        };
        Verdict {
            accepted,
            signers,
            text,
            status,
        }
    }
}
