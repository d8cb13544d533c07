//! The `warden` command line (`CLI.md`): argument definitions and command dispatch.
//!
//! Like ripgrep's flags, the raw arguments are parsed by clap here and each command
//! module turns them into library calls: the pipeline itself is
//! [`crate::host::Warden`]'s, and this module holds argument parsing, output and exit
//! codes only. Every command returns a [`CliError`] that carries its exit code, so
//! `main.rs` stays a thin shell.

pub mod audit;
pub use crate::escape;
mod inspect;
mod panic;
mod pin;
pub mod policy;
mod run;
mod suggest;

use clap::{Parser, Subcommand};

/// A command's failure: what to print and which exit code to use.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Exit code per `CLI.md`.
    pub code: u8,
    /// Message for stderr, escaped by [`CliError::new`] (see [`escape::escape_text`]).
    pub message: String,
}

impl CliError {
    /// An error with `code` and `message`. The message goes through
    /// [`escape::escape_text`] here, the one boundary every error message crosses on
    /// its way to stderr: parts that embed plugin text (declared paths, requests, a
    /// refusal's reason) cannot reach the terminal raw even if a caller forgot to
    /// escape them. Escaping is idempotent, so parts already escaped with
    /// [`escape::escape_line`] print the same. Newlines are kept (a policy's errors are
    /// one per line); one-line parts must be escaped with `escape_line` by the caller.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        let message = message.into();
        CliError {
            code,
            message: escape::escape_text(&message).into_owned(),
        }
    }
}

pub use panic::{EXIT_INTERNAL, exit_code_of, install_panic_hook, panic_line};

/// Exit code: invalid plugin.
pub const EXIT_INVALID_PLUGIN: u8 = 65;
pub use crate::host::EXIT_NO_INPUT;

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
