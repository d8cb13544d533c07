//! `warden policy suggest`: print the narrowest `[plugins.NAME]` tables that would have
//! let the audit-mode runs in the logs do what they did ([`crate::policy::suggest`]).

use super::escape::{escape_line, json_text};
use super::{CliError, EXIT_NO_INPUT};
use crate::audit::read::{for_each_record, log_set, parse_time};
use crate::policy::suggest::{Suggester, render_toml};
use std::path::PathBuf;
use std::time::SystemTime;

/// Arguments of `warden policy suggest`.
#[derive(Debug, clap::Args)]
pub struct SuggestArgs {
    /// Only this plugin (its declared name).
    #[arg(long, value_name = "NAME")]
    pub plugin: Option<String>,
    /// Only runs since this time: RFC 3339 (`2026-12-01T08:00:00Z`, `2026-12-01`), a
    /// duration ago (`1h`, `7d`), `today` or `yesterday`.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Print JSON (the evidence for every item) instead of TOML.
    #[arg(long)]
    pub json: bool,
    /// Audit logs, oldest first (default: the default log and its rotated files).
    #[arg(value_name = "LOG")]
    pub logs: Vec<PathBuf>,
}

/// The files an `audit`-reading command reads: those named, else the default log's
/// set (rotated files oldest first, then the log).
pub(super) fn logs_or_default(named: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    if !named.is_empty() {
        return Ok(named.to_vec());
    }
    let base = crate::host::default_audit_log()
        .map_err(|e| CliError::new(EXIT_NO_INPUT, escape_line(&e.to_string())))?;
    let files =
        log_set(&base).map_err(|e| CliError::new(EXIT_NO_INPUT, escape_line(&e.to_string())))?;
    if files.is_empty() {
        return Err(CliError::new(
            EXIT_NO_INPUT,
            format!(
                "no audit log at `{}` (the default); name the log files to read",
                escape_line(&base.display().to_string())
            ),
        ));
    }
    Ok(files)
}

/// A `--since`/`--until` value, or the command line error.
pub(super) fn time_arg(flag: &str, value: Option<&str>) -> Result<Option<SystemTime>, CliError> {
    value
        .map(|t| parse_time(t, SystemTime::now()))
        .transpose()
        .map_err(|e| CliError::new(2, format!("{flag}: {}", escape_line(&e))))
}

pub(super) fn suggest(args: &SuggestArgs) -> Result<u8, CliError> {
    let files = logs_or_default(&args.logs)?;
    let since = time_arg("--since", args.since.as_deref())?;
    let mut suggester = Suggester::new();
    for_each_record(&files, |record| {
        let recent = match (since, record.time()) {
            (Some(since), Some(t)) => t >= since,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if recent {
            suggester.add(&record);
        }
    })
    .map_err(|e| CliError::new(EXIT_NO_INPUT, escape_line(&e.to_string())))?;
    let suggestions = suggester.suggestions(args.plugin.as_deref());
    if args.json {
        let value = serde_json::json!({ "plugins": suggestions });
        println!("{}", json_text(&value, true));
        return Ok(0);
    }
    let source: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    print!("{}", render_toml(&source.join(", "), &suggestions));
    if suggestions.is_empty() {
        eprintln!(
            "warden: no audit-mode run{} in the log{}: run the plugin under a policy with `mode = \"audit\"` first",
            args.plugin
                .as_deref()
                .map(|p| format!(" of `{}`", escape_line(p)))
                .unwrap_or_default(),
            if args.since.is_some() {
                " since then"
            } else {
                ""
            }
        );
    }
    Ok(0)
}
