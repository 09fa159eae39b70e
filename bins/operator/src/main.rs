//! `operator`: parses the command line, starts logging and runs the command; the library holds
//! everything else.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = cnpg_operator::Cli::parse();
    let log = cli.log.clone();
    cnpg_telemetry::run_main(&log, || cnpg_operator::run(cli))
}
