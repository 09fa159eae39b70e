//! `operator`: Kubernetes operator for PostgreSQL clusters (postgresql.cnpg.io/v1).
//!
//! Reconciles Cluster, Pooler, Backup and ScheduledBackup objects, serves the admission webhooks on
//! 9443 and metrics on 8080. Its commands land with the controllers (see the README); until then
//! the binary reports its build identity only.

/// The command line: `--help` and `--version` (version and git commit).
#[derive(Debug, clap::Parser)]
#[command(
    name = "operator",
    version = cnpg_telemetry::LONG_VERSION,
    about = "Kubernetes operator for PostgreSQL clusters (postgresql.cnpg.io/v1)",
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
