//! `pgbouncer-sidecar`: Runs and configures PgBouncer for a Pooler.
//!
//! PID 1 of every pooler pod: renders pgbouncer.ini from the Pooler, supervises PgBouncer and
//! exports its metrics on 9127. Its commands land with the Pooler controller (see the README); until
//! then the binary reports its build identity only.

/// The command line: `--help` and `--version` (version and git commit).
#[derive(Debug, clap::Parser)]
#[command(
    name = "pgbouncer-sidecar",
    version = cnpg_telemetry::LONG_VERSION,
    about = "Runs and configures PgBouncer for a Pooler",
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
