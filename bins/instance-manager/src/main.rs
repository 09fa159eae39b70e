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
    // restore_command's "not found" is an answer, not a failure worth an error line: PostgreSQL
    // asks for every segment it could use, and streams or waits when the store lacks one.
    let mut not_archived = false;
    let code = cnpg_telemetry::run_main(&log, || match cnpg_instance_manager::run(cli) {
        Err(cnpg_instance_manager::Error::NotArchived(name)) => {
            tracing::debug!(%name, "not in the object store");
            not_archived = true;
            Ok(())
        }
        other => other,
    });
    if not_archived {
        std::process::ExitCode::FAILURE
    } else {
        code
    }
}
