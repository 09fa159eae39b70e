//! Process plumbing every cnpg-rs binary shares, and nothing more: the build identity that
//! `--version` prints, the logging flags, and the structured logger behind them.
//!
//! Data flow: `main` parses [`LogArgs`] with its clap CLI, calls [`init_logging`] once, and from
//! then on everything logs through `tracing`. Logs go to stderr (stdout is reserved for command
//! output such as `instance status`), as JSON lines when stderr is not a terminal.
//! No async runtime and no client live here.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The workspace version shared by all four binaries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binaries were built from (`unknown` outside a checkout).
pub const GIT_COMMIT: &str = env!("CNPG_RS_GIT_COMMIT");
/// What `--version` prints after the binary name.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CNPG_RS_GIT_COMMIT"), ")");

/// Target prefix shared by every crate of this workspace (`cnpg_operator`, `cnpg_imaging`, ...).
const OWN_TARGETS: &str = "cnpg";

/// Log levels, named as CloudNativePG names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn filter(self) -> LevelFilter {
        match self {
            Self::Error => LevelFilter::ERROR,
            Self::Warning => LevelFilter::WARN,
            Self::Info => LevelFilter::INFO,
            Self::Debug => LevelFilter::DEBUG,
            Self::Trace => LevelFilter::TRACE,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON unless stderr is a terminal.
    Auto,
    /// One JSON object per event: `timestamp`, `level`, `message`, fields, `target`.
    Json,
    /// Human-readable lines.
    Text,
}

/// The logging flags every binary accepts.
#[derive(Clone, Debug, clap::Args)]
pub struct LogArgs {
    /// Lowest level logged by cnpg-rs itself; libraries log at most `info`.
    #[arg(long, value_enum, default_value_t = LogLevel::Info, env = "CNPG_LOG_LEVEL", global = true)]
    pub log_level: LogLevel,
    /// Log format: `json` lines, `text`, or `auto` (JSON unless stderr is a terminal).
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, env = "CNPG_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to install the global logger")]
    Install(#[source] tracing::subscriber::SetGlobalDefaultError),
}

/// Installs the global logger writing to stderr. Call once, first thing in `main`.
pub fn init_logging(args: &LogArgs) -> Result<(), Error> {
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let subscriber = subscriber(args.log_level, json, std::io::stderr);
    tracing::subscriber::set_global_default(subscriber).map_err(Error::Install)
}

/// The subscriber behind [`init_logging`], writing to any writer (tests capture it).
pub fn subscriber<W>(level: LogLevel, json: bool, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Our crates log at the requested level; dependencies (HTTP, TLS, Kubernetes client)
    // are capped at info so `--log-level trace` stays readable and never dumps wire data.
    let filter = Targets::new()
        .with_target(OWN_TARGETS, level.filter())
        .with_default(level.min(LogLevel::Info).filter());
    let (json_layer, text_layer) = if json {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer);
        (Some(layer), None)
    } else {
        let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer);
        (None, Some(layer))
    };
    tracing_subscriber::registry()
        .with(json_layer)
        .with(text_layer)
        .with(filter)
}

/// Renders an error with every cause in its chain: `failed to X: failed to Y: io error`.
/// Library errors keep their cause in `source()` only, so this is how a binary shows it all.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// The body of every binary's `main`: installs logging, runs `run`, logs a failure with its
/// whole cause chain and turns the outcome into the process exit code (0 ok, 1 failed,
/// 2 when logging itself could not start).
pub fn run_main<E>(log: &LogArgs, run: impl FnOnce() -> Result<(), E>) -> std::process::ExitCode
where
    E: std::error::Error,
{
    if let Err(err) = init_logging(log) {
        #[expect(
            clippy::print_stderr,
            reason = "the logger is what failed; stderr is all that is left"
        )]
        {
            eprintln!("{}", error_chain(&err));
        }
        return std::process::ExitCode::from(2);
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "command failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Problems with a binary's command line as users see it: an argument or command without help
/// text, or a version that does not name the commit. Each binary's tests assert it is empty.
pub fn cli_problems(cmd: &clap::Command) -> Vec<String> {
    let mut problems = Vec::new();
    if cmd.get_version() != Some(LONG_VERSION) {
        problems.push(format!("`{}` does not report LONG_VERSION", cmd.get_name()));
    }
    undocumented(cmd, cmd.get_name(), &mut problems);
    problems
}

fn undocumented(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
    if cmd.get_about().is_none() {
        problems.push(format!("`{path}` has no about text"));
    }
    for arg in cmd.get_arguments() {
        let builtin = matches!(arg.get_id().as_str(), "help" | "version");
        if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
            problems.push(format!("`{path}`: argument `{}` has no help text", arg.get_id()));
        }
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        undocumented(sub, &format!("{path} {}", sub.get_name()), problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut bytes = self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(level: LogLevel, json: bool, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = subscriber(level, json, move || sink.clone());
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_carry_level_message_fields_and_target() {
        let out = capture(LogLevel::Info, true, || {
            tracing::info!(target: "cnpg_operator::reconcile", cluster = "pg-1", "reconciled");
        });
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "reconciled");
        assert_eq!(line["cluster"], "pg-1");
        assert_eq!(line["target"], "cnpg_operator::reconcile");
        assert!(line["timestamp"].is_string());
    }

    #[test]
    fn level_applies_to_our_crates_and_caps_dependencies_at_info() {
        let out = capture(LogLevel::Debug, false, || {
            tracing::debug!(target: "cnpg_imaging", "ours");
            tracing::debug!(target: "hyper::proto", "dependency detail");
            tracing::info!(target: "hyper::proto", "dependency summary");
        });
        assert!(out.contains("ours"), "{out}");
        assert!(!out.contains("dependency detail"), "{out}");
        assert!(out.contains("dependency summary"), "{out}");

        let quiet = capture(LogLevel::Warning, false, || {
            tracing::info!(target: "cnpg_operator", "chatter");
            tracing::warn!(target: "cnpg_operator", "problem");
        });
        assert!(!quiet.contains("chatter") && quiet.contains("problem"), "{quiet}");
    }

    #[test]
    fn error_chain_names_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("failed to read the spec")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"));
        assert_eq!(error_chain(&err), "failed to read the spec: no such file");
    }

    #[test]
    fn the_stamped_commit_is_the_checkout_head() {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned());
        match (std::env::var("CNPG_RS_GIT_COMMIT").ok().filter(|c| !c.is_empty()), head) {
            (Some(pinned), _) => assert_eq!(GIT_COMMIT, pinned),
            (None, Some(head)) => {
                assert_eq!(GIT_COMMIT, head, "a stale build: build.rs did not rerun")
            }
            (None, None) => assert_eq!(GIT_COMMIT, "unknown"),
        }
        assert_eq!(LONG_VERSION, format!("{VERSION} (commit {GIT_COMMIT})"));
    }

    #[test]
    fn cli_problems_finds_undocumented_arguments_and_a_missing_commit() {
        let cmd = clap::Command::new("tool")
            .about("a tool")
            .version("1.0")
            .arg(clap::Arg::new("quiet").long("quiet"))
            .subcommand(clap::Command::new("run").about("runs"));
        let problems = cli_problems(&cmd);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("LONG_VERSION"));
        assert!(problems[1].contains("`quiet`"));
    }
}
