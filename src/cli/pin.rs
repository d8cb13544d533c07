//! `warden policy pin`: add or update `sha256` pins in a policy file, in place,
//! keeping comments and layout ([`warden::policy::pin`]).
//!
//! # Security
//!
//! The policy is edited through [`warden::files::Edit`]: read once, and replaced by a
//! temporary file renamed over it that keeps its mode and owner (pin often runs as
//! root on a policy another account owns, and the policy loader checks both). A
//! symlinked policy is edited where the link resolves to, and the output says which
//! file that was; the link itself stays a link.

use super::CliError;
use super::escape::escape_line;
use super::host_failure;
use std::path::{Path, PathBuf};
use warden::exit;
use warden::files::{Edit, FileError};
use warden::host::{Inspection, Warden};
use warden::policy::Policy;
use warden::policy::pin::{PinChange, pin};

/// Arguments of `warden policy pin`.
#[derive(Debug, clap::Args)]
pub struct PinArgs {
    /// The policy file to edit.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Keep the old digest next to the new one (a rolling update): a single pin
    /// becomes a list; a list always gets the new digest appended. Needed to pin two
    /// different modules that declare the same plugin name.
    #[arg(long)]
    pub rolling: bool,
    /// The plugin modules to pin, each under the name it declares.
    #[arg(value_name = "PLUGIN.wasm", required = true)]
    pub plugins: Vec<PathBuf>,
}

pub(super) fn pin_plugins(args: &PinArgs) -> Result<u8, CliError> {
    // A symlinked policy (`policy.toml -> releases/v3.toml`) is pinned where it
    // resolves to: that file is edited, keeping its mode and owner, and the link stays.
    let edit = Edit::open_following_link(&args.policy).map_err(|e| file_error(&e))?;
    let file = edit.path().display().to_string();
    let shown = escape_line(&file);
    let mut text = String::from_utf8(edit.contents().to_vec()).map_err(|_| {
        CliError::new(
            exit::POLICY_INVALID,
            format!("cannot pin in `{shown}`: it is not UTF-8 text"),
        )
    })?;
    let warden = Warden::builder()
        .without_audit()
        .build()
        .map_err(|e| host_failure(&e))?;
    let mut modules: Vec<(&PathBuf, String, String)> = Vec::new();
    for plugin in &args.plugins {
        let Inspection { manifest, sha256 } =
            warden.inspect(plugin).map_err(|e| host_failure(&e))?;
        let name = manifest.command.name.clone();
        let digest = hex::encode(sha256);
        if !args.rolling
            && let Some((first, _, _)) = modules.iter().find(|(_, n, d)| *n == name && *d != digest)
        {
            return Err(same_name(first, plugin, &name));
        }
        modules.push((plugin, name, digest));
    }
    let mut report = Vec::new();
    for (_, name, digest) in &modules {
        let (name, digest) = (name.as_str(), digest.as_str());
        let (edited, change) = pin(&file, &text, name, digest, args.rolling)
            .map_err(|e| CliError::new(exit::POLICY_INVALID, escape_line(&e.to_string())))?;
        text = edited;
        let what = match change {
            PinChange::Unchanged => "already pinned".to_owned(),
            PinChange::Added => "pinned".to_owned(),
            PinChange::NewTable => "pinned in a new table".to_owned(),
            PinChange::Appended => "appended to the pins (rolling update)".to_owned(),
            PinChange::Replaced(old) => format!("replaced {old}"),
        };
        report.push(format!(
            "{shown}: [plugins.{}] sha256 {digest}: {what}",
            escape_line(&warden::policy::toml_key(name))
        ));
    }
    // The edited text must still be a valid policy before it replaces the file.
    if let Err(errors) = Policy::parse(&file, &text) {
        let lines: Vec<String> = errors
            .errors()
            .iter()
            .map(|e| escape_line(&e.to_string()))
            .collect();
        return Err(CliError::new(
            exit::POLICY_INVALID,
            format!(
                "the policy would not be valid after pinning; nothing was written:\n{}",
                lines.join("\n")
            ),
        ));
    }
    let edited = edit.replace(text.as_bytes()).map_err(|e| file_error(&e))?;
    if edited != args.policy {
        println!(
            "{}: a symbolic link; edited the file it resolves to, {}",
            escape_line(&args.policy.display().to_string()),
            escape_line(&edited.display().to_string())
        );
    }
    for line in report {
        println!("{line}");
    }
    Ok(0)
}

/// Two different modules given for one plugin name without `--rolling`: pinning both
/// would silently replace the first pin with the second.
fn same_name(first: &Path, second: &Path, name: &str) -> CliError {
    CliError::new(
        exit::USAGE,
        format!(
            "`{}` and `{}` are different modules that both declare the plugin `{}`; one `[plugins.{}]` table would pin only the last: give one of them, or add `--rolling` to pin both (a rolling update)",
            escape_line(&first.display().to_string()),
            escape_line(&second.display().to_string()),
            escape_line(name),
            escape_line(&warden::policy::toml_key(name))
        ),
    )
}

fn file_error(e: &FileError) -> CliError {
    CliError::new(exit::NO_INPUT, escape_line(&e.to_string()))
}
