//! `instance-manager`: parses the command line, starts logging and runs the command; the
//! library holds everything else.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // OpenSSL is set up once, on this thread, before the runtime starts any other (rust-openssl
    // would do it on first use, with the same options: no at-exit cleanup).
    openssl::init();
    let cli = cnpg_instance_manager::Cli::parse();
    if let Some(code) = cnpg_instance_manager::wal_helper_exit(&cli.command) {
        return code;
    }
    let log = cli.log.clone();
    cnpg_telemetry::run_main(&log, || cnpg_instance_manager::run(cli))
}
