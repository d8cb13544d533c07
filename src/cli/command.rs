//! The shape of the command line ([`Cli`], clap's derive) and the dispatch of each
//! command to its module: the top of the CLI, which nothing else imports.

use super::{CliError, audit, inspect, manual, policy, run};
use clap::{CommandFactory, Parser, Subcommand};

/// warden: run WebAssembly plugins with only what a policy allows.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None, propagate_version = true)]
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
    /// Policy files: check them, explain what one grants a plugin, suggest tables from
    /// audit-mode runs, pin plugins' SHA-256 (check, explain, suggest, pin).
    Policy(policy::PolicyArgs),
    /// The audit log: verify its hash chain, show records, summarize them, sign a
    /// checkpoint, make a checkpoint key (verify, show, summary, checkpoint, keygen).
    Audit(audit::AuditArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(manual::CompletionsArgs),
    /// Write the man pages into a directory (for packagers).
    #[command(hide = true)]
    ManPages(manual::ManPagesArgs),
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
        Command::Completions(args) => manual::completions(&args, Cli::command()),
        Command::ManPages(args) => manual::man_pages(&args, Cli::command()),
    }
}
