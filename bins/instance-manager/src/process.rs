//! Child processes of PID 1. In a container the instance manager is PID 1, so every orphan
//! in the container becomes its child and must be reaped, or zombies pile up. One reaper
//! task waits for *any* child on SIGCHLD; the processes we start ourselves are registered
//! with it, so their exit status reaches whoever waits for them (a second `waitpid` on the
//! same child, as `std::process::Child::wait` would do, would race the reaper).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Self::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    waiting: BTreeMap<i32, oneshot::Sender<Exit>>,
}

/// Reaps every child and delivers the exit of the ones we started.
#[derive(Debug, Clone, Default)]
pub struct Reaper {
    table: Arc<Mutex<Table>>,
}

/// A process we started.
#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    exit: oneshot::Receiver<Exit>,
}

/// A program could not be run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to start {program}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{program} exited with {exit}: {stderr}")]
    Failed {
        program: String,
        exit: Exit,
        stderr: String,
    },
    #[error("the reaper stopped before {program} ended")]
    Lost { program: String },
}

/// What a finished program printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Reaper {
    /// Starts reaping: on every SIGCHLD, collects every child that has ended.
    pub fn start() -> std::io::Result<Self> {
        let reaper = Self::default();
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
        let table = Arc::clone(&reaper.table);
        tokio::spawn(async move {
            loop {
                reap(&table);
                if sigchld.recv().await.is_none() {
                    return;
                }
            }
        });
        Ok(reaper)
    }

    /// Starts `cmd` and registers it under the table's lock, so the reaper cannot collect it
    /// before its exit has somewhere to go.
    fn register(&self, cmd: &mut Command) -> Result<(std::process::Child, Running), Error> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let (sender, exit) = oneshot::channel();
        table.waiting.insert(pid, sender);
        Ok((child, Running { pid, exit }))
    }

    /// Starts `cmd`; the handle is dropped without waiting, the reaper collects its exit.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Running, Error> {
        self.register(cmd).map(|(_, running)| running)
    }

    /// Runs `cmd` to completion with stdin closed; its output, or an error carrying stderr.
    pub async fn output(&self, cmd: &mut Command) -> Result<Output, Error> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let (mut child, mut running) = self.register(cmd)?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            tokio::task::spawn_blocking(move || {
                let mut text = String::new();
                if let Some(mut pipe) = pipe {
                    let mut bytes = Vec::new();
                    let _ = pipe.read_to_end(&mut bytes);
                    text = String::from_utf8_lossy(&bytes).into_owned();
                }
                text
            })
        };
        let out = read(stdout.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
        let err = read(stderr.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
        drop(child);
        let exit = running.wait().await.ok_or_else(|| Error::Lost {
            program: program.clone(),
        })?;
        let stdout = out.await.unwrap_or_default();
        let stderr = err.await.unwrap_or_default();
        if exit.success() {
            Ok(Output { stdout, stderr })
        } else {
            Err(Error::Failed {
                program,
                exit,
                stderr: stderr.trim().to_owned(),
            })
        }
    }
}

impl Running {
    /// Waits for the process to end.
    pub async fn wait(&mut self) -> Option<Exit> {
        (&mut self.exit).await.ok()
    }

    /// Whether it ended, without waiting; the exit if so.
    pub fn try_exit(&mut self) -> Option<Exit> {
        self.exit.try_recv().ok()
    }

    /// Sends `signal`; an already-ended process is not an error.
    pub fn signal(&self, signal: Signal) {
        match kill(Pid::from_raw(self.pid), signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => tracing::warn!(pid = self.pid, %signal, error = %e, "failed to signal a child"),
        }
    }
}

fn reap(table: &Mutex<Table>) {
    loop {
        let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
        let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, Exit::Signal(signal as i32)),
            // Nothing more has ended (or we have no children at all).
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "waitpid failed");
                return;
            }
        };
        match table.waiting.remove(&pid.as_raw()) {
            Some(sender) => {
                let _ = sender.send(exit);
            }
            None => tracing::debug!(pid = pid.as_raw(), %exit, "reaped an orphan"),
        }
    }
}
