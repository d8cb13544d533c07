//! The `warden` binary: parse the command line, dispatch, exit with the code `CLI.md`
//! assigns. A panic in warden prints one line and exits 70, never 101 (a code a
//! plugin may return): see [`warden::cli::install_panic_hook`].

use clap::Parser;
use std::process::ExitCode;
use warden::cli::{Cli, dispatch, exit_code_of, install_panic_hook};

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    ExitCode::from(exit_code_of(|| dispatch(cli)))
}
