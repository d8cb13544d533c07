//! `warden policy pin`: add or update `sha256` pins in a policy file, in place,
//! keeping comments and layout ([`crate::policy::pin`]).

use super::escape::escape_line;
use super::policy::{EXIT_POLICY_INVALID, host_failure};
use super::{CliError, EXIT_NO_INPUT};
use crate::host::{Inspection, Warden};
use crate::policy::Policy;
use crate::policy::pin::{PinChange, pin};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

/// Arguments of `warden policy pin`.
#[derive(Debug, clap::Args)]
pub struct PinArgs {
    /// The policy file to edit.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Keep the old digest next to the new one (a rolling update): a single pin
    /// becomes a list; a list always gets the new digest appended.
    #[arg(long)]
    pub rolling: bool,
    /// The plugin modules to pin, each under the name it declares.
    #[arg(value_name = "PLUGIN.wasm", required = true)]
    pub plugins: Vec<PathBuf>,
}

pub(super) fn pin_plugins(args: &PinArgs) -> Result<u8, CliError> {
    let file = args.policy.display().to_string();
    let shown = escape_line(&file);
    let mut text = std::fs::read_to_string(&args.policy)
        .map_err(|e| CliError::new(EXIT_NO_INPUT, format!("cannot read policy `{shown}`: {e}")))?;
    let warden = Warden::builder()
        .without_audit()
        .build()
        .map_err(|e| host_failure(&e))?;
    let mut report = Vec::new();
    for plugin in &args.plugins {
        let Inspection { manifest, sha256 } =
            warden.inspect(plugin).map_err(|e| host_failure(&e))?;
        let digest = hex::encode(sha256);
        let name = manifest.command.name.clone();
        let (edited, change) = pin(&file, &text, &name, &digest, args.rolling)
            .map_err(|e| CliError::new(EXIT_POLICY_INVALID, escape_line(&e.to_string())))?;
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
            escape_line(&crate::policy::toml_key(&name))
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
            EXIT_POLICY_INVALID,
            format!(
                "the policy would not be valid after pinning; nothing was written:\n{}",
                lines.join("\n")
            ),
        ));
    }
    replace_file(&args.policy, &text)
        .map_err(|e| CliError::new(EXIT_NO_INPUT, format!("cannot write policy `{shown}`: {e}")))?;
    for line in report {
        println!("{line}");
    }
    Ok(0)
}

/// Writes `text` to a new file beside `path` with `path`'s permissions, then renames it
/// over `path`: a reader sees the old policy or the new one, never half of one.
fn replace_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".warden-pin.tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777)))
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
