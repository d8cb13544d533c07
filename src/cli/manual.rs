//! Shell completions and man pages, both generated from the one clap definition
//! (`Cli`, which `command` hands over) so that neither can drift from the commands
//! warden really takes.
//!
//! - `warden completions SHELL` prints a completion script for bash, zsh, fish,
//!   elvish or PowerShell on stdout (clap_complete, clap's own generator);
//! - `warden man-pages DIR` (hidden: it is for packagers and `docs/man/generate.sh`)
//!   writes `warden.1` and one page per subcommand (`warden-policy-check.1`, ...) with
//!   clap_mangen, clap's own roff generator, through [`warden::files`] like every
//!   file warden writes.

use super::{CliError, escape_line};
use clap::Args;
use clap_complete::Shell;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use warden::exit;

/// Arguments of `warden completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of `warden man-pages`.
#[derive(Debug, Args)]
pub struct ManPagesArgs {
    /// The directory to write the pages into (created if missing; existing pages are
    /// replaced).
    pub dir: PathBuf,
}

/// `cli` built: subcommands know their full names (`warden-policy-check`).
fn built(mut cli: clap::Command) -> clap::Command {
    cli.build();
    cli
}

/// Prints the completion script of the command line `cli` for `args.shell`.
///
/// # Errors
///
/// Exit 1 when stdout cannot be written.
pub fn completions(args: &CompletionsArgs, cli: clap::Command) -> Result<u8, CliError> {
    let mut command = built(cli);
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "warden", &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot write to stdout: {e}")))?;
    Ok(exit::SUCCESS)
}

/// Every page of the command line `cli`: (file name, roff text), the top page first.
///
/// # Errors
///
/// The rendering's I/O error (into memory, so none in practice).
pub fn pages(cli: clap::Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = Vec::new();
    collect(&built(cli), &mut pages)?;
    Ok(pages)
}

fn collect(command: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    if command.is_hide_set() {
        return Ok(());
    }
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut roff)?;
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name());
    pages.push((format!("{name}.1"), roff));
    for sub in command.get_subcommands() {
        if sub.get_name() != "help" {
            collect(sub, pages)?;
        }
    }
    Ok(())
}

/// Writes every page of the command line `cli` into `args.dir`.
///
/// # Errors
///
/// Exit 1 when the directory or a page cannot be written.
pub fn man_pages(args: &ManPagesArgs, cli: clap::Command) -> Result<u8, CliError> {
    let cannot = |what: &Path, e: &dyn std::fmt::Display| {
        CliError::new(
            exit::FAILURE,
            format!(
                "cannot write {}: {}",
                escape_line(&what.display().to_string()),
                escape_line(&e.to_string())
            ),
        )
    };
    warden::files::create_dirs(&args.dir, 0o755).map_err(|e| cannot(&args.dir, &e))?;
    let pages = pages(cli).map_err(|e| cannot(&args.dir, &e))?;
    for (name, roff) in &pages {
        let path = args.dir.join(name);
        warden::files::replace(&path, roff, 0o644).map_err(|e| cannot(&path, &e))?;
        println!("{}", escape_line(&path.display().to_string()));
    }
    Ok(exit::SUCCESS)
}
