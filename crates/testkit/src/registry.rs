//! Debian's `docker-registry` on loopback for tests: TLS with a certificate the test makes
//! (its own CA), htpasswd (bcrypt) authentication, an access log to count uploads, and
//! restarts onto the same storage (optionally read-only, to make it fail mid-run).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::{run, self_signed, wait_until};

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Registry {
    /// Starts a registry with TLS and one user.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("certs.d"))?;
        self_signed(root, "cnpg-rs test registry", "IP:127.0.0.1,DNS:localhost")?;
        // skopeo reads a CA from a directory, as ca.crt.
        std::fs::copy(root.join("cert.pem"), root.join("certs.d/ca.crt"))?;
        let (user, password) = ("cnpg-rs-robot".to_owned(), "correct horse battery staple".to_owned());
        let htpasswd = run(Command::new("htpasswd").args(["-Bbn", &user, &password]))?;
        std::fs::write(root.join("htpasswd"), htpasswd.stdout)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut registry = Self {
            dir,
            child: None,
            port,
            user,
            password,
        };
        registry.restart(false)?;
        Ok(registry)
    }

    fn config(&self, read_only: bool) -> String {
        let root = self.dir.path().display();
        format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\n  maintenance:\n    readonly:\n      enabled: {read_only}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: cnpg-rs-test\n  tls:\n    certificate: {root}/cert.pem\n    key: {root}/key.pem\n\
             auth:\n  htpasswd:\n    realm: cnpg-rs-test\n    path: {root}/htpasswd\n",
            port = self.port
        )
    }

    /// (Re)starts the registry on the same storage and port; `read_only` refuses every write.
    pub fn restart(&mut self, read_only: bool) -> anyhow::Result<()> {
        self.stop();
        let config = self.dir.path().join("config.yml");
        std::fs::write(&config, self.config(read_only))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("failed to start docker-registry: is it installed? (scripts/setup.sh installs it)")?;
        self.child = Some(child);
        let port = self.port;
        anyhow::ensure!(
            wait_until(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "docker-registry did not listen within 20 s: {}",
            self.log()
        );
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// A directory holding the CA as `ca.crt`, for skopeo's `--cert-dir`.
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Everything the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Completed blob uploads (`PUT …/blobs/uploads/…` answered 201) in the access log.
    pub fn blob_uploads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/") && l.contains("\" 201 "))
            .count()
    }

    /// Requests that changed something (`PUT`, `POST`, `PATCH`, `DELETE` answered 2xx) in the
    /// access log: zero since a point means nothing was pushed since.
    pub fn writes(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                ["\"PUT /v2/", "\"POST /v2/", "\"PATCH /v2/", "\"DELETE /v2/"]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .filter(|l| [" 200 ", " 201 ", " 202 ", " 204 "].iter().any(|c| l.contains(c)))
            .count()
    }

    /// The files the registry stores its blobs in: a test may change one there, so the
    /// registry serves bytes that do not match their digest.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let root = self.dir.path().join("data/docker/registry/v2/blobs/sha256");
        let dirs = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        dirs(&root)
            .iter()
            .flat_map(|prefix| dirs(prefix))
            .map(|blob| blob.join("data"))
            .filter(|data| data.is_file())
            .collect()
    }

    /// Writes a docker `config.json` holding this registry's credentials (or `password`).
    pub fn docker_config(&self, path: &Path, password: Option<&str>) -> anyhow::Result<()> {
        // base64 of user:password without a trailing newline.
        let pair = format!("{}:{}", self.user, password.unwrap_or(&self.password));
        let encoded = run(Command::new("sh").args(["-c", "printf %s \"$0\" | base64 -w0", &pair]))?;
        let json = format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            self.host(),
            String::from_utf8(encoded.stdout)?.trim()
        );
        std::fs::write(path, json)?;
        Ok(())
    }

    /// `skopeo inspect [--raw|--config]` of `reference` (`repo:tag` or `repo@digest`).
    pub fn skopeo_inspect(&self, reference: &str, extra: &[&str]) -> anyhow::Result<serde_json::Value> {
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .args(extra)
            .arg("--cert-dir")
            .arg(self.cert_dir())
            .arg("--creds")
            .arg(format!("{}:{}", self.user, self.password))
            .arg(format!("docker://{reference}")))?;
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
