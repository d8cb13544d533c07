//! `warden policy check` and `warden policy explain`, and the policy loading that
//! `run` shares with them.

use super::CliError;
use super::escape::{escape_line, json_text};
use super::{host_failure, warden_builder};
use std::fmt::Write as _;
use std::path::PathBuf;
use warden::exit;
use warden::grant::{Decision, Decisions};
use warden::host::{Explanation, default_audit_log};
use warden::limits::Limits;
use warden::policy::{LoadError, Mode, Policy};

/// The warning printed on every run under an audit-mode policy.
pub const AUDIT_WARNING: &str = "warden: WARNING: the policy is in audit mode: the plugin gets everything it declares that no deny list or built-in protection denies, and what the policy would deny is only recorded (`would_deny`); never use audit mode in production";

/// Arguments of `warden policy`.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// The `policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files: print `FILE: ok` or every error as `FILE:LINE:COLUMN: message`.
    Check(CheckArgs),
    /// Show what `run` would grant and deny for a plugin, item by item, with the deciding
    /// rule and reason (runs only `plugin_manifest`).
    Explain(ExplainArgs),
    /// Print the narrowest `[plugins.NAME]` tables that would have let the audit-mode
    /// runs in the logs do what they did (from `access` and `effect` records), as TOML
    /// that `policy check` accepts, with the evidence in comments; refused requests as
    /// commented entries, declarations no run used denied by name.
    Suggest(super::suggest::SuggestArgs),
    /// Add or update `sha256` pins of plugins in a policy file, in place, keeping
    /// comments and layout.
    Pin(super::pin::PinArgs),
}

/// Arguments of `warden policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Accept policy files that group or others may write.
    #[arg(long)]
    pub allow_insecure_policy: bool,
    /// Fail (exit 1) on warnings too, not only on errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Directory that relative paths resolve against when checking that allowed
    /// directories exist (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// The policy files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Arguments of `warden policy explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The policy (default: `$WARDEN_POLICY` when set and not empty, then the built-in
    /// policy, which grants only stdout and stderr).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Accept a policy file that group or others may write.
    #[arg(long)]
    pub allow_insecure_policy: bool,
    /// Directory that relative paths resolve against (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// The audit log `run` would write (default: as for `run`): no plugin is granted
    /// it (`builtin.protected`). Nothing is written to it.
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The plugin module.
    #[arg(value_name = "PLUGIN.wasm")]
    pub plugin: PathBuf,
}

pub(super) fn policy(args: PolicyArgs) -> Result<u8, CliError> {
    match args.command {
        PolicyCommand::Check(args) => Ok(check(&args)),
        PolicyCommand::Explain(args) => explain(&args),
        PolicyCommand::Suggest(args) => super::suggest::suggest(&args),
        PolicyCommand::Pin(args) => super::pin::pin_plugins(&args),
    }
}

fn check(args: &CheckArgs) -> u8 {
    let mut code = 0;
    let workdir = args
        .workdir
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    for file in &args.files {
        let name = escape_line(&file.display().to_string());
        match Policy::load(file, args.allow_insecure_policy) {
            Ok(policy) => {
                let warnings = policy.warnings(&workdir, home.as_deref());
                for w in &warnings {
                    let line =
                        format!("{}:{}:{}: warning: {}", w.file, w.line, w.column, w.message);
                    println!("{}", escape_line(&line));
                }
                match warnings.len() {
                    0 => println!("{name}: ok"),
                    n if args.deny_warnings => {
                        println!("{name}: {n} warning(s), failing (--deny-warnings)");
                        code = code.max(exit::FAILURE);
                    }
                    n => println!("{name}: ok, with {n} warning(s)"),
                }
            }
            Err(LoadError::Invalid(errors)) => {
                for e in errors.errors() {
                    println!("{}", escape_line(&e.to_string()));
                }
                code = code.max(exit::FAILURE);
            }
            Err(e @ LoadError::Read { .. }) => {
                eprintln!("warden: {}", escape_line(&e.to_string()));
                code = code.max(exit::NO_INPUT);
            }
        }
    }
    code
}

fn explain(args: &ExplainArgs) -> Result<u8, CliError> {
    let mut builder = warden_builder(args.policy.as_deref(), args.allow_insecure_policy)
        .without_audit()
        // What `run` would decide: its own audit log is protected too.
        .protect_audit_log(match &args.audit_log {
            Some(log) => log.clone(),
            None => default_audit_log().map_err(|e| host_failure(&e))?,
        });
    if let Some(dir) = &args.workdir {
        builder = builder.workdir(dir);
    }
    let warden = builder.build().map_err(|e| host_failure(&e))?;
    let Explanation {
        manifest,
        decisions,
        policy,
        confinement,
    } = warden.explain(&args.plugin).map_err(|e| host_failure(&e))?;
    let version = manifest.command.version.as_deref();
    if args.json {
        let mut value = explain_json(&policy, version, &decisions);
        value["confinement"] = match &confinement {
            Ok(c) => serde_json::to_value(c).unwrap_or_default(),
            Err(why) => serde_json::json!({ "error": why.to_string() }),
        };
        println!("{}", json_text(&value, true));
    } else {
        let mut table = explain_table(&policy, version, &decisions);
        // After the header's `confine` line: what this machine's kernel enforces.
        let kernel = match &confinement {
            Ok(c) => c.summary(),
            Err(why) => format!("no worker could start: {why}"),
        };
        let at = table.find("\nverdict").map_or(0, |i| i + 1);
        table.insert_str(at, &format!("kernel   {}\n", escape_line(&kernel)));
        print!("{table}");
    }
    // A refusal is the verdict: the same exit code `run` would give.
    Ok(if decisions.refusal().is_some() {
        exit::REFUSED
    } else {
        0
    })
}

/// The limits as a JSON object.
pub(super) fn limits_json(limits: &Limits) -> serde_json::Value {
    // The same fields as `run_start`'s `limits`.
    serde_json::to_value(warden::audit::LimitsRecord::from(limits)).unwrap_or_default()
}

fn explain_json(policy: &Policy, version: Option<&str>, d: &Decisions) -> serde_json::Value {
    serde_json::json!({
        "plugin": {
            "name": d.plugin(),
            "version": version,
            "sha256": hex::encode(d.sha256()),
        },
        "policy": {
            "path": policy.path(),
            "sha256": policy.sha256_hex(),
            "mode": policy.mode(),
        },
        "table": d.table(),
        "on_denied": d.on_denied(),
        "limits": limits_json(d.limits()),
        "isolation": {
            "value": d.isolation().0,
            "rule": d.isolation().1,
        },
        "confine": {
            "value": d.confine().0,
            "rule": d.confine().1,
        },
        "refusal": d.refusal().map(|r| serde_json::json!({
            "rule": r.rule(),
            "reason": r.to_string(),
        })),
        "decisions": d.items(),
    })
}

fn describe_limits(l: &Limits) -> String {
    use warden::policy::format_size;
    format!(
        "fuel {}, memory {}, stack {}, timeout {}, max_output {}",
        l.fuel,
        format_size(l.memory),
        format_size(l.stack as u64),
        humantime::format_duration(l.timeout),
        format_size(l.max_output)
    )
}

fn verdict(d: &Decisions) -> String {
    if let Some(r) = d.refusal() {
        return format!("refused (exit {}): {r}", exit::REFUSED);
    }
    let total = d.items().len();
    if total == 0 {
        return "runs with nothing granted: the plugin declares nothing".to_owned();
    }
    let in_effect = d.items().iter().filter(|i| i.is_in_effect()).count();
    match d.mode() {
        Mode::Audit => {
            let would = d
                .items()
                .iter()
                .filter(|i| i.outcome() == warden::grant::Outcome::WouldDeny)
                .count();
            format!(
                "runs with {in_effect} of {total} declared items (audit mode: {would} would be denied)"
            )
        }
        Mode::Enforce => format!("runs with {in_effect} of {total} declared items granted"),
    }
}

/// The explanation as a table: a header, then one row per declared item.
fn explain_table(policy: &Policy, version: Option<&str>, d: &Decisions) -> String {
    let mut out = String::new();
    let table = match (d.table(), d.refusal()) {
        (Some(t), _) => format!("[{t}]"),
        (None, _) if policy.plugin(d.plugin()).is_some() => "none applies (see verdict)".to_owned(),
        (None, _) => "none: `[defaults]` only".to_owned(),
    };
    let mut header = vec![
        (
            "plugin",
            format!("{} {}", d.plugin(), version.unwrap_or("(no version)")),
        ),
        ("sha256", hex::encode(d.sha256())),
        (
            "policy",
            format!("{} (sha256 {})", policy.path(), policy.sha256_hex()),
        ),
        ("mode", policy.mode().as_str().to_owned()),
        ("table", table),
        ("limits", describe_limits(d.limits())),
    ];
    if d.items()
        .iter()
        .any(|i| i.capability() == warden::grant::Capability::Net)
    {
        let l = d.limits();
        header.push((
            "network",
            format!(
                "max_requests {} per call, max_response {}, request_timeout {}",
                l.max_requests,
                warden::policy::format_size(l.max_response),
                humantime::format_duration(l.request_timeout)
            ),
        ));
    }
    let (isolation, rule) = d.isolation();
    header.push(("isolation", format!("{} ({rule})", isolation.as_str())));
    let (confine, rule) = d.confine();
    header.push(("confine", format!("{} ({rule})", confine.as_str())));
    header.push(("verdict", verdict(d)));
    for (k, v) in header {
        let _ = writeln!(out, "{k:<8} {}", escape_line(&v));
    }
    let _ = writeln!(out);
    if d.items().is_empty() {
        let _ = writeln!(out, "the plugin declares no capabilities");
        return out;
    }
    let rows: Vec<[String; 7]> = d.items().iter().map(row).collect();
    let titles = [
        "OUTCOME",
        "CAPABILITY",
        "REQUEST",
        "HOST PATH",
        "GUEST PATH",
        "RULE",
        "REASON",
    ];
    let mut widths = titles.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: [&str; 7]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == cells.len() - 1 {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(titles);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]);
    }
    out
}

fn row(d: &Decision) -> [String; 7] {
    let dash = |s: Option<&str>| escape_line(s.unwrap_or("-"));
    [
        d.outcome().as_str().to_owned(),
        d.capability().as_str().to_owned(),
        escape_line(d.request()),
        dash(d.host_path()),
        dash(d.guest_path()),
        escape_line(d.rule()),
        escape_line(d.reason()),
    ]
}
