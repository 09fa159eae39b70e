//! `image-rebuilder`: Builds, scans and publishes the operator and operand images from signed packages.
//!
//! Its commands (`build`, `scan`, then `rebuild` for the daily CronJob) land with the image
//! pipeline (see the README); until then the binary reports its build identity only.

/// The command line: `--help` and `--version` (version and git commit).
#[derive(Debug, clap::Parser)]
#[command(
    name = "image-rebuilder",
    version = cnpg_telemetry::LONG_VERSION,
    about = "Builds, scans and publishes the operator and operand images from signed packages",
    arg_required_else_help = true
)]
pub struct Cli {}

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
