//! The `warden` binary: parse the command line, dispatch, exit with the code `CLI.md`
//! assigns ([`warden::exit`]). A panic in warden prints one line and exits 70, never
//! 101 (a code a plugin may return): see [`warden::exit::install_panic_hook`].
//!
//! The command line ([`cli`]) is this binary's own module, not the library's.

mod cli;

use clap::Parser;
use cli::{Cli, dispatch, exit_code_of};
use std::process::ExitCode;

fn main() -> ExitCode {
    // First: a start as a confined worker never reaches the command line.
    warden::worker::main_if_worker();
    warden::exit::install_panic_hook();
    cli::diagnostics::install();
    let cli = Cli::parse();
    ExitCode::from(exit_code_of(|| dispatch(cli)))
}
