//! The `warden` command line (`CLI.md`): argument definitions and command dispatch.
//!
//! Like ripgrep's flags, the raw arguments are parsed by clap here and each command
//! module turns them into library calls. Every command returns a [`CliError`] that
//! carries its exit code, so `main.rs` stays a thin shell.

pub mod audit;
pub mod escape;
mod inspect;
pub mod policy;
mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// A command's failure: what to print and which exit code to use.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Exit code per `CLI.md`.
    pub code: u8,
    /// Message for stderr (already escaped).
    pub message: String,
}

impl CliError {
    /// An error with `code` and `message`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
}

/// Exit code: invalid plugin.
pub const EXIT_INVALID_PLUGIN: u8 = 65;
/// Exit code: a named file does not exist or cannot be read.
pub const EXIT_NO_INPUT: u8 = 66;

/// warden: run WebAssembly plugins with only what a policy allows.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a plugin, decide its grants, and run it with ARGS.
    Run(run::RunArgs),
    /// Show a plugin's manifest, declared capabilities and SHA-256 (runs only
    /// `plugin_manifest`).
    Inspect(inspect::InspectArgs),
    /// Check policy files, or explain what a policy grants a plugin.
    Policy(policy::PolicyArgs),
    /// Check the audit log's hash chain.
    Audit(audit::AuditArgs),
}

/// Runs the parsed command; returns the exit code on success paths too (a plugin's
/// `Error` result exits with its code).
///
/// # Errors
///
/// A [`CliError`] with the exit code and message.
pub fn dispatch(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Policy(args) => policy::policy(args),
        Command::Audit(args) => audit::audit(args),
    }
}

/// Reads a plugin file, mapping failures to exit code 66.
pub(crate) fn read_plugin(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::new(
            EXIT_NO_INPUT,
            format!("cannot read plugin `{}`: {e}", path.display()),
        )
    })
}

/// Formats a runtime error for the terminal, with the file it came from.
pub(crate) fn runtime_failure(path: &std::path::Path, e: &crate::RuntimeError) -> CliError {
    CliError::new(
        e.exit_code(),
        format!(
            "{}: {}",
            escape::escape_line(&path.display().to_string()),
            escape::escape_line(&e.to_string())
        ),
    )
}
