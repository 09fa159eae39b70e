//! PostgreSQL from Debian's packages, started by a test in a temporary directory on a free
//! loopback port. Runs as the `postgres` system user when the test runs as root (PostgreSQL
//! refuses root), as the test's own user otherwise.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// The binaries of a major, or an error naming the package that provides them.
pub fn bin_dir(major: u32) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if !dir.join("postgres").exists() {
        bail!(
            "PostgreSQL {major} is not installed ({} is missing): scripts/setup.sh installs postgresql-{major}",
            dir.display()
        );
    }
    Ok(dir)
}

/// `(uid, gid)` the server runs as: `postgres` under root, else ourselves (None).
pub fn server_ids() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY-free way to learn the effective uid: /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status")?;
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .context("no effective uid in /proc/self/status")?;
    if uid != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let fields: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .context("no `postgres` user: the postgresql package creates it (scripts/setup.sh installs it)")?
        .split(':')
        .collect();
    match (
        fields.get(2).and_then(|u| u.parse().ok()),
        fields.get(3).and_then(|g| g.parse().ok()),
    ) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        _ => bail!("malformed `postgres` entry in /etc/passwd"),
    }
}

/// A command that runs `program` as the server's user (`setpriv` under root).
pub fn as_user(program: &Path, ids: Option<(u32, u32)>) -> Command {
    match ids {
        Some(_) => {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
                .arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Hands `path` to the server's user (under root; a no-op otherwise).
pub fn give(path: &Path, ids: Option<(u32, u32)>) -> anyhow::Result<()> {
    if let Some((uid, gid)) = ids {
        chown(path, Some(uid), Some(gid)).with_context(|| format!("failed to chown {}", path.display()))?;
    }
    Ok(())
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A data directory and, once started, its server.
#[derive(Debug)]
pub struct Postgres {
    pub major: u32,
    dir: tempfile::TempDir,
    ids: Option<(u32, u32)>,
    pub port: u16,
    child: Option<Child>,
}

impl Postgres {
    /// `initdb` into a fresh directory (extra arguments appended).
    pub fn init(major: u32, args: &[&str]) -> anyhow::Result<Self> {
        let bin = bin_dir(major)?;
        let dir = tempfile::tempdir()?;
        let ids = server_ids()?;
        let me = Self {
            major,
            dir,
            ids,
            port: free_port()?,
            child: None,
        };
        me.own(me.root())?;
        for sub in ["run", "log", "certificates"] {
            let path = me.root().join(sub);
            std::fs::DirBuilder::new().mode(0o700).create(&path)?;
            me.own(&path)?;
        }
        let data = me.data();
        let mut cmd = me.as_server(&bin.join("initdb"));
        cmd.arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=reject",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .args(args);
        crate::run(&mut cmd)?;
        Ok(me)
    }

    /// Hands `path` to the server's user (under root).
    fn own(&self, path: &Path) -> anyhow::Result<()> {
        give(path, self.ids)
    }

    /// A command run as the server's user.
    pub fn as_server(&self, program: &Path) -> Command {
        as_user(program, self.ids)
    }

    /// The directory everything lives in.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.root().join("data")
    }

    pub fn sockets(&self) -> PathBuf {
        self.root().join("run")
    }

    pub fn logs(&self) -> PathBuf {
        self.root().join("log")
    }

    pub fn certificates(&self) -> PathBuf {
        self.root().join("certificates")
    }

    /// The operating-system user the server runs as.
    pub fn os_user(&self) -> String {
        match self.ids {
            Some(_) => "postgres".into(),
            None => std::env::var("USER").unwrap_or_else(|_| "postgres".into()),
        }
    }

    /// Writes a file the server reads, owned by it, with `mode`.
    pub fn write(&self, path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        file.write_all(contents.as_bytes())?;
        self.own(path)
    }

    /// Starts `postgres` on loopback at `self.port` with its socket in [`Self::sockets`] (these
    /// win over the configuration files), and waits until it accepts connections.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let bin = bin_dir(self.major)?;
        let mut cmd = self.as_server(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.data())
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.sockets());
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        self.child = Some(cmd.spawn().context("failed to start postgres")?);
        let socket = self.sockets();
        let port = self.port.to_string();
        let ready = crate::wait_until(Duration::from_secs(30), || {
            Command::new(bin.join("pg_isready"))
                .arg("-h")
                .arg(&socket)
                .args(["-p", &port, "-q"])
                .status()
                .is_ok_and(|s| s.success())
        });
        if !ready {
            let stderr = self.stop();
            bail!("postgres did not accept connections within 30 s: {stderr}");
        }
        Ok(())
    }

    /// `psql` over the Unix socket as `postgres` (peer authentication); the rows, unaligned.
    pub fn sql(&self, query: &str) -> anyhow::Result<String> {
        self.sql_each(&[query])
    }

    /// Statements sent one by one in one session (psql `-c` each), as a driver sends them, over
    /// the Unix socket as `postgres`; the rows they print, unaligned.
    pub fn sql_each(&self, statements: &[&str]) -> anyhow::Result<String> {
        let bin = bin_dir(self.major)?;
        let mut cmd = self.as_server(&bin.join("psql"));
        cmd.arg("-h").arg(self.sockets()).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
        ]);
        for statement in statements {
            cmd.args(["-c", statement]);
        }
        let out = crate::run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Stops the server (fast shutdown) and returns what it wrote to stderr.
    pub fn stop(&mut self) -> String {
        let Some(child) = self.child.take() else {
            return String::new();
        };
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let output = child.wait_with_output();
        output
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default()
    }

    /// Everything the server logged (its log directory, all files).
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.logs()).into_iter().flatten().flatten() {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        text
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
