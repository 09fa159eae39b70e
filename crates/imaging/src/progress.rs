//! Download progress: one updating line on a terminal, plain log lines otherwise.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;

/// Counts finished items and bytes of a batch of downloads.
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    total_items: usize,
    total_bytes: u64,
    state: Mutex<(usize, u64)>,
    terminal: bool,
}

impl Progress {
    pub fn new(what: &'static str, total_items: usize, total_bytes: u64) -> Self {
        Self {
            what,
            total_items,
            total_bytes,
            state: Mutex::new((0, 0)),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Records one finished item of `bytes` named `name`.
    pub fn done(&self, name: &str, bytes: u64) {
        let (items, sum) = {
            let Ok(mut state) = self.state.lock() else { return };
            state.0 += 1;
            state.1 += bytes;
            *state
        };
        if self.terminal {
            let mut err = std::io::stderr().lock();
            // Progress is best effort: a closed stderr must not fail a build.
            let _ = write!(
                err,
                "\r\x1b[2K{}: {items}/{} ({:.1}/{:.1} MB) {name}",
                self.what,
                self.total_items,
                mb(sum),
                mb(self.total_bytes)
            );
            if items == self.total_items {
                let _ = writeln!(err);
            }
        } else {
            tracing::info!(
                what = self.what,
                item = name,
                bytes,
                done = items,
                total = self.total_items,
                "fetched"
            );
        }
    }
}

fn mb(bytes: u64) -> f64 {
    // Display only: precision loss is irrelevant.
    #[expect(clippy::cast_precision_loss, reason = "a progress display needs no exact megabytes")]
    let value = bytes as f64 / 1e6;
    value
}
