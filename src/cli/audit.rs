//! `warden audit verify`: check the hash chain of audit log files.

use super::{CliError, EXIT_NO_INPUT};
use crate::audit::verify_files;
use std::path::PathBuf;

/// Exit code of `audit verify` when the chain breaks, the log ends torn, or a run has
/// no `run_end`.
pub const EXIT_BROKEN: u8 = 1;

/// Arguments of `warden audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of audit log files, given oldest first (rotated files in
    /// order): print `ok: N records, head SHA256`, or the file, line and seq where it
    /// breaks (exit 1). A line that is complete JSON but not a strict record breaks the
    /// chain wherever it is. A torn line (a writer stopped mid-record: not complete
    /// JSON) is passed over when the next record chains past it and listed on stderr
    /// with its place; a torn last line is reported as torn (exit 1), not as tampering.
    /// Every run whose `run_start` has no `run_end` is listed with the place of its
    /// `run_start` and fails verification (exit 1): its tail was lost, or it is still
    /// running (verify cannot tell, so verify a log that nobody is writing).
    Verify(VerifyArgs),
}

/// Arguments of `warden audit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The log files, oldest first.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

pub(super) fn audit(args: AuditArgs) -> Result<u8, CliError> {
    match args.command {
        AuditCommand::Verify(args) => verify(&args),
    }
}

fn verify(args: &VerifyArgs) -> Result<u8, CliError> {
    let report =
        verify_files(&args.files).map_err(|e| CliError::new(EXIT_NO_INPUT, e.to_string()))?;
    for at in &report.torn_skipped {
        eprintln!(
            "warden: note: {at}: torn line skipped: a writer stopped mid-record there and the next record follows the one before it"
        );
    }
    for at in &report.torn_tail {
        eprintln!(
            "warden: note: {at}: torn line at the end of the log: a writer stopped mid-record there"
        );
    }
    for run in &report.incomplete_runs {
        println!("incomplete run: {run}");
    }
    println!("{}", report.summary());
    Ok(if report.is_ok() { 0 } else { EXIT_BROKEN })
}
