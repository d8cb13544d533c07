//! The `warden` binary: parse the command line, dispatch, exit with the code `CLI.md`
//! assigns.

use clap::Parser;
use std::process::ExitCode;
use warden::cli::{Cli, dispatch};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("warden: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
