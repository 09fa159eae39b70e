//! `instance-manager`: parses the command line, starts logging and runs the command; the
//! library holds everything else.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // First, before any OpenSSL call can initialise it implicitly: without the at-exit cleanup,
    // which in the static build frees state that exiting threads still release (a double free
    // when the process ends).
    openssl::init();
    let cli = cnpg_instance_manager::Cli::parse();
    if let Some(code) = cnpg_instance_manager::wal_helper_exit(&cli.command) {
        return code;
    }
    let log = cli.log.clone();
    cnpg_telemetry::run_main(&log, || cnpg_instance_manager::run(cli))
}
