//! `image-rebuilder`: builds the operator and operand images from signed Debian-format
//! package repositories, without a daemon and reproducibly, and scans them.
//!
//! The commands are thin: they turn flags into [`cnpg_imaging::pipeline::Options`] and print
//! results; everything else lives in `cnpg-imaging`.

use std::io::Write as _;
use std::path::PathBuf;

use cnpg_imaging::layout::{self, Target};
use cnpg_imaging::pipeline::{self, Options, Report};
use cnpg_imaging::publish::{self, PublishOptions, RunReport};
use cnpg_imaging::registry::{self, Credentials, Password, Pusher};
use cnpg_imaging::site::{self, Site};
use cnpg_telemetry::LogArgs;

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "image-rebuilder",
    version = cnpg_telemetry::LONG_VERSION,
    about = "Builds, scans and publishes the operator and operand images from signed packages"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Resolve, fetch, assemble, scan and write images. Nothing is written unless every
    /// image was built and passed its scan.
    Build(Box<BuildArgs>),
    /// The daily job: build and scan every image, push what changed with its SBOM, then write
    /// the ClusterImageCatalog of pinned digests. Exit code 0 only when all of it succeeded;
    /// the catalog is rewritten only then.
    Rebuild(Box<RebuildArgs>),
    /// Scan the images of an OCI layout or docker archive; exit non-zero on FATAL or WARN.
    Scan {
        /// oci:DIR or docker-archive:FILE
        target: Target,
    },
}

/// Where packages come from and what to build: shared by `build` and `rebuild`.
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// Directory holding repositories.yaml, distributions.yaml and images.yaml.
    #[arg(long, default_value = "images")]
    pub spec: PathBuf,
    /// Where repositories live: a site file, or `host-apt` for this machine's apt sources.
    #[arg(long)]
    pub site: Option<String>,
    /// Accept an expired Valid-Until for one suite (`REPOSITORY:SUITE`, e.g. a frozen
    /// mirror's `debian:sid`); the report records it. Repeatable.
    #[arg(long = "allow-expired", value_name = "REPOSITORY:SUITE")]
    pub allow_expired: Vec<String>,
    /// Build only this image (e.g. `postgresql-17-minimal`, `operator`). Repeatable.
    #[arg(long = "only", value_name = "NAME")]
    pub only: Vec<String>,
    /// Content-addressed download cache [default: $XDG_CACHE_HOME/cnpg-rs/image-rebuilder].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Keep what runs learn here (the newest signed `Release` date per suite, so a mirror
    /// replaying older metadata is refused): give it storage that outlives the run
    /// [default: the cache directory].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Directory holding our release binaries, for the images that carry one.
    #[arg(long)]
    pub binaries: Option<PathBuf>,
    /// Debian architecture to build for. Repeatable.
    #[arg(long = "arch", default_value = "amd64")]
    pub architectures: Vec<String>,
    /// Write the locks used to this directory.
    #[arg(long = "write-locks", value_name = "DIR")]
    pub locks_to: Option<PathBuf>,
    /// Report images the configured repositories cannot provide instead of failing.
    #[arg(long)]
    pub skip_unavailable: bool,
    /// Build even when a package is older than in the previous locks (`--write-locks`) or,
    /// for `rebuild`, in the published image: refused by default, as a mirror serving older
    /// packages or a replayed index would do that.
    #[arg(long)]
    pub allow_downgrade: bool,
}

/// `build` flags.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output: oci:DIR (OCI image layout) or docker-archive:FILE (for `docker load`).
    #[arg(long)]
    pub out: Target,
    /// Build from the locks in this directory instead of resolving.
    #[arg(long = "locks", value_name = "DIR")]
    pub locks_from: Option<PathBuf>,
}

/// `rebuild` flags.
#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Registry and repository prefix to push to: HOST[:PORT]/PREFIX.
    #[arg(long)]
    pub registry: registry::Target,
    /// PEM file of the CA that signed the registry's certificate (in addition to the
    /// system's roots).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Docker config.json with the registry's credentials (the format of a
    /// kubernetes.io/dockerconfigjson Secret).
    #[arg(long)]
    pub auth_file: Option<PathBuf>,
    /// Registry user name, with --password-file (instead of --auth-file).
    #[arg(long, requires = "password_file")]
    pub username: Option<String>,
    /// File holding the registry password (never pass a password as an argument).
    #[arg(long, requires = "username")]
    pub password_file: Option<PathBuf>,
    /// The ClusterImageCatalog file to write (one document per flavor and OS).
    #[arg(long)]
    pub catalog_out: PathBuf,
    /// `images.cnpg.io/publisher` label of the catalogs.
    #[arg(long, default_value = "cnpg-rs")]
    pub publisher: String,
}

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Site(#[from] site::Error),
    #[error("--allow-expired `{0}`: expected REPOSITORY:SUITE")]
    AllowExpired(String),
    #[error("no cache directory: pass --cache-dir or set XDG_CACHE_HOME or HOME")]
    NoCache,
    #[error("SOURCE_DATE_EPOCH `{0}` is not a number of seconds")]
    Epoch(String),
    #[error(transparent)]
    Build(#[from] pipeline::Error),
    #[error(transparent)]
    Publish(#[from] publish::Error),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error("failed to read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("failed to write the report {}", .0.display())]
    Report(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Layout(#[from] layout::Error),
    #[error("{0} image(s) failed the scan")]
    ScanFailed(usize),
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("failed to write to stdout")]
    Stdout(#[source] std::io::Error),
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<(), Error> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)
    };
    match cli.command {
        Command::Build(args) => {
            let args = *args;
            let mut options = options(args.source)?;
            options.locks_from = args.locks_from;
            let report = runtime()?.block_on(pipeline::build(&options, &args.out))?;
            print_table(&report).map_err(Error::Stdout)
        }
        Command::Rebuild(args) => {
            let args = *args;
            let report_path = args.source.report.clone();
            let mut build = options(args.source)?;
            build.report = None;
            let credentials = credentials(
                &args.registry,
                args.auth_file.as_deref(),
                args.username,
                args.password_file.as_deref(),
            )?;
            let ca = args
                .ca_file
                .as_ref()
                .map(|f| std::fs::read(f).map_err(|e| Error::Read(f.clone(), e)))
                .transpose()?;
            let publish = PublishOptions {
                build,
                pusher: Pusher::new(args.registry, credentials, ca),
                catalog_out: args.catalog_out,
                publisher: args.publisher,
            };
            let report = runtime()?.block_on(publish::rebuild(&publish))?;
            if let Some(path) = report_path {
                let mut text = serde_json::to_vec_pretty(&report)
                    .map_err(|e| Error::Report(path.clone(), std::io::Error::other(e)))?;
                text.push(b'\n');
                std::fs::write(&path, text).map_err(|e| Error::Report(path.clone(), e))?;
            }
            print_run(&report).map_err(Error::Stdout)
        }
        Command::Scan { target } => scan(&target),
    }
}

fn credentials(
    target: &registry::Target,
    auth_file: Option<&std::path::Path>,
    username: Option<String>,
    password_file: Option<&std::path::Path>,
) -> Result<Option<Credentials>, Error> {
    if let (Some(username), Some(file)) = (username, password_file) {
        let password = std::fs::read_to_string(file).map_err(|e| Error::Read(file.to_owned(), e))?;
        return Ok(Some(Credentials {
            username,
            password: Password::new(password.trim_end_matches(['\n', '\r']).to_owned()),
        }));
    }
    match auth_file {
        Some(file) => Ok(Credentials::from_docker_config(file, &target.host)?),
        None => Ok(None),
    }
}

fn options(args: SourceArgs) -> Result<Options, Error> {
    let mut site = match args.site.as_deref() {
        Some("host-apt") => Site::from_host_apt()?,
        Some(file) => Site::from_file(file.as_ref())?,
        None => Site {
            origin: "no --site given".into(),
            ..Site::default()
        },
    };
    for pair in &args.allow_expired {
        let (repo, suite) = pair.split_once(':').ok_or_else(|| Error::AllowExpired(pair.clone()))?;
        site.allow_expired(repo, suite);
    }
    let cache_dir = match args.cache_dir {
        Some(dir) => dir,
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .ok_or(Error::NoCache)?
            .join("cnpg-rs/image-rebuilder"),
    };
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(v.parse().map_err(|_| Error::Epoch(v))?),
        _ => None,
    };
    let mut options = Options::new(args.spec, site, cache_dir);
    options.only = args.only;
    options.report = args.report;
    options.state_dir = args.state_dir;
    options.binaries = args.binaries;
    options.architectures = args.architectures;
    options.locks_to = args.locks_to;
    options.skip_unavailable = args.skip_unavailable;
    options.allow_downgrade = args.allow_downgrade;
    options.source_date_epoch = source_date_epoch;
    options.tool = format!("image-rebuilder {}", cnpg_telemetry::LONG_VERSION);
    Ok(options)
}

/// The summary of a rebuild on stdout.
fn print_run(report: &RunReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<26} {:<20} {:<8} {:>6} {:>12}",
        "IMAGE", "DIGEST", "CHANGED", "BLOBS", "UPLOADED"
    )?;
    for image in &report.images {
        let digest = image.digest.get(..19).unwrap_or(&image.digest);
        writeln!(
            out,
            "{:<26} {:<20} {:<8} {:>6} {:>12}",
            image.image,
            digest,
            image.changed,
            image.blobs_uploaded,
            mb(image.bytes_uploaded)
        )?;
    }
    for skipped in &report.skipped {
        writeln!(out, "{:<26} skipped: {}", skipped.image, skipped.reason)?;
    }
    writeln!(
        out,
        "catalog {}: {}",
        report.catalog,
        if report.catalog_changed { "updated" } else { "unchanged" }
    )
}

fn mb(bytes: u64) -> String {
    format!("{}.{} MB", bytes / 1_000_000, bytes % 1_000_000 / 100_000)
}

/// The summary table on stdout.
fn print_table(report: &Report) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<26} {:<9} {:<20} {:>10} {:>12} {:>5} {:<5}",
        "IMAGE", "OS", "DIGEST", "COMPRESSED", "UNCOMPRESSED", "PKGS", "SCAN"
    )?;
    for image in &report.images {
        let digest = image.digest.get(..19).unwrap_or(&image.digest);
        writeln!(
            out,
            "{:<26} {:<9} {:<20} {:>10} {:>12} {:>5} {:<5}",
            image.image,
            image.distribution,
            digest,
            mb(image.compressed_bytes),
            mb(image.uncompressed_bytes),
            image.packages,
            image.scan
        )?;
    }
    for skipped in &report.skipped {
        writeln!(out, "{:<26} skipped: {}", skipped.image, skipped.reason)?;
    }
    Ok(())
}

fn scan(target: &Target) -> Result<(), Error> {
    let images = layout::read(target)?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for image in &images {
        let verdict = cnpg_imaging::scan::scan(&image.tree, &image.config);
        writeln!(out, "{}: {}", image.name, verdict.scan).map_err(Error::Stdout)?;
        for finding in &verdict.findings {
            for detail in &finding.details {
                writeln!(
                    out,
                    "  {:?} {} {}: {detail}",
                    finding.level, finding.code, finding.title
                )
                .map_err(Error::Stdout)?;
            }
        }
        if !verdict.passed() {
            failed += 1;
        }
    }
    if failed > 0 {
        Err(Error::ScanFailed(failed))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_flag_is_documented_and_version_names_the_commit() {
        super::Cli::command().debug_assert();
        let mut cmd = super::Cli::command();
        cmd.build();
        assert_eq!(cnpg_telemetry::cli_problems(&cmd), Vec::<String>::new());
    }
}
