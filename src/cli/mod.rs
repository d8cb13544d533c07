//! The `warden` command line (`CLI.md`): argument definitions and command dispatch.
//!
//! Like ripgrep's flags, the raw arguments are parsed by clap ([`Cli`], in `command`,
//! which dispatches) and each command module turns them into library calls: the
//! pipeline itself is [`warden::host::Warden`]'s, and the command line holds argument
//! parsing, output and exit codes ([`warden::exit`]) only. Every command returns a
//! [`CliError`] that carries its exit code, so `main.rs` stays a thin shell. This file
//! holds what the commands share (the error, the policy a command runs under, how a
//! host failure is reported), below every command module.
//!
//! It is the binary's, not the library's: clap's types are no part of what the library
//! promises an application that embeds warden.

pub mod audit;
pub use warden::escape;
mod command;
pub mod diagnostics;
mod inspect;
mod manual;
mod pin;
pub mod policy;
mod run;
mod suggest;

use escape::escape_line;
use std::path::{Path, PathBuf};
use warden::audit::read::ReadError;
use warden::exit;
use warden::host::{HostError, Warden, WardenBuilder};
use warden::policy::LoadError;

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

pub use command::{Cli, dispatch};

/// Runs a command and returns the process's exit code: the command's own, or, with
/// its message printed to stderr, its error's; [`warden::exit::INTERNAL`] when it
/// panicked ([`warden::exit::catch_panic`]).
pub fn exit_code_of(command: impl FnOnce() -> Result<u8, CliError>) -> u8 {
    warden::exit::catch_panic(|| match command() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {}", e.message);
            e.code
        }
    })
}

/// A [`WardenBuilder`] with the policy named by `--policy`, else by `$WARDEN_POLICY`
/// (an empty value counts as unset), else the built-in one.
fn warden_builder(arg: Option<&Path>, allow_insecure: bool) -> WardenBuilder {
    let from_env = std::env::var_os("WARDEN_POLICY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let builder = Warden::builder().allow_insecure_policy(allow_insecure);
    match arg.map(Path::to_path_buf).or(from_env) {
        Some(path) => builder.policy_file(path),
        None => builder,
    }
}

/// An audit log that cannot be read ([`exit::NO_INPUT`]), or a file that is not one
/// ([`exit::INVALID_PLUGIN`], `EX_DATAERR`): one line naming the file and, for the
/// latter, its first line that is not a record.
fn read_failure(e: &ReadError) -> CliError {
    let file = escape_line(&e.path.display().to_string());
    if e.source.kind() == std::io::ErrorKind::InvalidData {
        let why = escape_line(&e.source.to_string());
        CliError::new(
            exit::INVALID_PLUGIN,
            format!("{file} is not an audit log: {why}"),
        )
    } else {
        CliError::new(exit::NO_INPUT, escape_line(&e.to_string()))
    }
}

/// A host failure as the command line reports it: every policy error on a line of its
/// own (`FILE:LINE:COLUMN: message`), everything escaped, with `CLI.md`'s exit code.
fn host_failure(e: &HostError) -> CliError {
    let message = match e {
        HostError::Policy(LoadError::Invalid(errors)) => errors
            .errors()
            .iter()
            .map(|e| escape_line(&e.to_string()))
            .collect::<Vec<_>>()
            .join("\nwarden: "),
        other => escape_line(&other.to_string()),
    };
    CliError::new(e.exit_code(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_command_exits_70_and_an_error_with_its_code() {
        assert_eq!(exit_code_of(|| Ok(3)), 3);
        assert_eq!(exit_code_of(|| Err(CliError::new(66, "gone"))), 66);
        // The default hook runs here (tests do not install ours): it prints, no exit.
        assert_eq!(
            exit_code_of(|| -> Result<u8, CliError> { panic!("a bug") }),
            70
        );
    }
}
