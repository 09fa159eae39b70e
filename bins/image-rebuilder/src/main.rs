//! `image-rebuilder`: parses the command line; the library holds everything else.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // With no command yet, clap answers `--help` and `--version` and rejects anything else,
    // so parsing never returns normally; the exit code below is the usage error.
    let _cli = cnpg_image_rebuilder::Cli::parse();
    std::process::ExitCode::from(2)
}
