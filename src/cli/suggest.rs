//! `warden policy suggest`: print the narrowest `[plugins.NAME]` tables that would have
//! let the audit-mode runs in the logs do what they did ([`warden::policy::suggest`]).

use super::CliError;
use super::escape::{escape_line, json_text};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use warden::audit::read::{for_each_record, log_set, parse_time};
use warden::exit;
use warden::policy::Policy;
use warden::policy::suggest::{AuditPolicy, PluginSuggestion, Suggester, render_toml};

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
    /// The audit policy whose deny lists the suggestion keeps (default: the policy
    /// file each run's records name, when it is still there unchanged). May repeat.
    #[arg(long, value_name = "FILE")]
    pub policy: Vec<PathBuf>,
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
    let base = warden::host::default_audit_log()
        .map_err(|e| CliError::new(exit::NO_INPUT, escape_line(&e.to_string())))?;
    let files =
        log_set(&base).map_err(|e| CliError::new(exit::NO_INPUT, escape_line(&e.to_string())))?;
    if files.is_empty() {
        return Err(CliError::new(
            exit::NO_INPUT,
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
        .map_err(|e| {
            CliError::new(
                exit::USAGE,
                format!("{flag}: {}", escape_line(&e.to_string())),
            )
        })
}

/// Keeps the deny lists of the audit policies in every suggestion: those named with
/// `--policy`, else the file each suggestion's runs name in their records, when its
/// SHA-256 is still the one they recorded. A suggestion whose audit policy cannot be
/// read is an error, never a table that withholds less than the runs were denied.
fn keep_denials(suggestions: &mut [PluginSuggestion], named: &[PathBuf]) -> Result<(), CliError> {
    // Only deny entries are taken from these files, and a deny entry can only narrow
    // the suggestion, so the ownership checks of `run` are not needed to read them.
    let load = |path: &Path| Policy::load(path, true);
    if !named.is_empty() {
        let mut policies = Vec::new();
        for path in named {
            let policy = load(path).map_err(|e| {
                CliError::new(
                    exit::NO_INPUT,
                    format!("--policy: {}", escape_line(&e.to_string())),
                )
            })?;
            policies.push(policy);
        }
        for s in suggestions.iter_mut() {
            for policy in &policies {
                s.keep_denials(policy);
            }
        }
        return Ok(());
    }
    let mut loaded: HashMap<AuditPolicy, Policy> = HashMap::new();
    for s in suggestions.iter_mut() {
        for wanted in s.audit_policies.clone() {
            if wanted.path == warden::policy::BUILTIN_NAME {
                continue;
            }
            if !loaded.contains_key(&wanted) {
                let policy = load(Path::new(&wanted.path)).map_err(|e| {
                    CliError::new(
                        exit::NO_INPUT,
                        format!(
                            "the runs of `{}` were decided under `{}`, which cannot be read now ({}); name that audit policy with `--policy FILE` so that the suggestion keeps its deny lists",
                            escape_line(&s.name),
                            escape_line(&wanted.path),
                            escape_line(&e.to_string())
                        ),
                    )
                })?;
                if let Some(sha) = &wanted.sha256
                    && *sha != policy.sha256_hex()
                {
                    return Err(CliError::new(
                        exit::NO_INPUT,
                        format!(
                            "the runs of `{}` were decided under `{}` with SHA-256 {}, but the file has changed since (now {}); name the policy they ran under with `--policy FILE` so that the suggestion keeps its deny lists",
                            escape_line(&s.name),
                            escape_line(&wanted.path),
                            escape_line(sha),
                            policy.sha256_hex()
                        ),
                    ));
                }
                loaded.insert(wanted.clone(), policy);
            }
            if let Some(policy) = loaded.get(&wanted) {
                s.keep_denials(policy);
            }
        }
    }
    Ok(())
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
    .map_err(|e| super::read_failure(&e))?;
    let mut suggestions = suggester.suggestions(args.plugin.as_deref());
    keep_denials(&mut suggestions, &args.policy)?;
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
