//! Starting and stopping `postgres` itself: executed directly (no shell, no pg_ctl), so its
//! signals and exit reach us, and stopped the way CloudNativePG stops it: smart shutdown
//! (wait for sessions to end) bounded by `smartShutdownTimeout`, then fast (roll back and
//! disconnect), then immediate when the overall budget is spent.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::{Instant, timeout};

use crate::db::Db;
use crate::layout::Layout;
use crate::process::{self, Exit, Reaper, Running};

/// PostgreSQL did not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spawn(#[from] process::Error),
    #[error("postgres exited with {exit} while starting; its log is in {}", .logs.display())]
    Exited { exit: Exit, logs: PathBuf },
    #[error("postgres did not accept connections within {0:?}")]
    Timeout(Duration),
}

/// A running postmaster.
#[derive(Debug)]
pub struct Postmaster {
    process: Running,
}

/// Options every start gets.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Overrides `listen_addresses` (`*` in a pod; one loopback address in tests).
    pub listen_addresses: Option<String>,
    /// Extra `-c name=value` settings (init's temporary server listens on no address).
    pub settings: Vec<(String, String)>,
}

impl Postmaster {
    /// Starts `postgres -D PGDATA` and waits until it accepts connections over the socket.
    pub async fn start(
        reaper: &Reaper,
        layout: &Layout,
        options: &StartOptions,
        deadline: Duration,
    ) -> Result<Self, Error> {
        let mut cmd = Command::new(layout.program("postgres"));
        cmd.arg("-D").arg(&layout.pg_data);
        if let Some(listen) = &options.listen_addresses {
            cmd.arg("-c").arg(format!("listen_addresses={listen}"));
        }
        for (name, value) in &options.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.env("TMPDIR", layout.tmp()).stdin(Stdio::null());
        let mut process = reaper.spawn(&mut cmd)?;
        tracing::info!(pid = process.pid, "postgres started");
        let until = Instant::now() + deadline;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if let Some(exit) = process.try_exit() {
                return Err(Error::Exited {
                    exit,
                    logs: layout.logs(),
                });
            }
            if Db::connect(&layout.sockets(), "postgres").await.is_ok() {
                return Ok(Self { process });
            }
            if Instant::now() >= until {
                process.signal(Signal::SIGQUIT);
                return Err(Error::Timeout(deadline));
            }
        }
    }

    /// Its exit, if it has ended.
    pub fn try_exit(&mut self) -> Option<Exit> {
        self.process.try_exit()
    }

    /// Waits until it ends.
    pub async fn wait(&mut self) -> Option<Exit> {
        self.process.wait().await
    }

    /// Smart, then fast after `smart`, then immediate once `total` has passed.
    pub async fn shutdown(mut self, smart: Duration, total: Duration) -> Option<Exit> {
        let start = Instant::now();
        for (signal, budget) in [
            (Signal::SIGTERM, smart.min(total)),
            (Signal::SIGINT, total.saturating_sub(smart)),
        ] {
            tracing::info!(pid = self.process.pid, %signal, ?budget, "stopping postgres");
            self.process.signal(signal);
            if let Ok(exit) = timeout(budget, self.process.wait()).await {
                tracing::info!(elapsed = ?start.elapsed(), "postgres stopped");
                return exit;
            }
        }
        tracing::warn!(
            pid = self.process.pid,
            "postgres did not stop in time: immediate shutdown"
        );
        self.process.signal(Signal::SIGQUIT);
        self.process.wait().await
    }

    /// Fast shutdown (a switchover), immediate after `budget`.
    pub async fn stop_fast(self, budget: Duration) -> Option<Exit> {
        self.shutdown(Duration::ZERO, budget).await
    }
}
