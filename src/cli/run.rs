//! `warden run`: arguments, output and exit codes around [`warden::host::Warden`], which
//! owns the pipeline (load, decide, sandbox, audit, run).
//!
//! # Security
//!
//! Whatever this prints from a record (a decision, a runtime denial, an effect, the
//! error that ended the call) it prints from the JSON the run's redactor makes of it
//! ([`Redactor::to_value`], the serializer of the audit log itself), so `-v` and
//! `--json` show exactly the redacted strings the log holds, never a granted value
//! (see `warden::audit::redact`). Only the plugin's own output and result are its
//! own, printed escaped but as they are.

use super::CliError;
use super::escape::{escape_line, escape_text, json_text};
use super::policy::AUDIT_WARNING;
use super::{host_failure, warden_builder};
use std::io::Write as _;
use std::path::PathBuf;
use warden::abi::ExecuteResult;
use warden::audit::{Redactor, Rotation};
use warden::exit;
use warden::grant::{Decision, Decisions, Outcome};
use warden::host::{Loaded, Plugin, Warden};
use warden::policy::Mode;
use warden::runtime::RunReport;

/// Arguments of `warden run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The policy (default: `$WARDEN_POLICY` when set and not empty, then the built-in
    /// policy, which grants only stdout and stderr).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Accept a policy file that group or others may write.
    #[arg(long)]
    pub allow_insecure_policy: bool,
    /// Neither read nor write the compiled-module cache (`$XDG_CACHE_HOME/warden`).
    #[arg(long)]
    pub no_cache: bool,
    /// The audit log (default: `$WARDEN_AUDIT_LOG`, then
    /// `$XDG_STATE_HOME/warden/audit.jsonl`, then `~/.local/state/warden/audit.jsonl`).
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// When to start a new audit log file: never, hourly or daily (files are named
    /// `PATH.YYYY-MM-DD[-HH]`), or `size:SIZE` (like `size:64MiB`: `PATH` is moved to
    /// `PATH.YYYY-MM-DD-HH-MM-SS` before it would grow past SIZE).
    #[arg(long, value_name = "WHEN", default_value = "never")]
    pub audit_rotate: Rotation,
    /// Keep at most N rotated audit log files besides the current one (the oldest are
    /// deleted when a new file starts). Sign checkpoints (`warden audit checkpoint`)
    /// more often than files are deleted, so the set left verifies with `--key`.
    #[arg(long, value_name = "N")]
    pub audit_keep: Option<usize>,
    /// Directory that relative paths in the policy and the manifest resolve against
    /// (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Print one JSON object instead of the plugin's output: outcome, output,
    /// exit_code, stdout, stderr, grants, denials, runtime_denials,
    /// runtime_denials_dropped, effects, fuel_consumed, duration_ms, run_id,
    /// confinement. A refusal (exit 77) has no stdout, stderr, runtime_denials_dropped
    /// or confinement.
    #[arg(long)]
    pub json: bool,
    /// After the run, list on stderr each denied item, refused call and refused
    /// request with its rule (by default one line counts them, leaving out the denials
    /// a rule of the policy names).
    #[arg(short, long)]
    pub verbose: bool,
    /// The plugin module, then the arguments passed to it. Everything after the
    /// plugin's path is the plugin's, `--json` and `-v` included; a `--` right after
    /// the path is optional and dropped.
    #[arg(
        value_names = ["PLUGIN.wasm", "ARGS"],
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<String>,
}

impl RunArgs {
    /// The plugin's path and the arguments it is called with.
    fn plugin_and_args(&self) -> (PathBuf, &[String]) {
        let (plugin, args) = self.command.split_first().map_or_else(
            || (PathBuf::new(), &[][..]),
            |(plugin, args)| (PathBuf::from(plugin), args),
        );
        match args.split_first() {
            Some((first, rest)) if first == "--" => (plugin, rest),
            _ => (plugin, args),
        }
    }
}

pub(super) fn run(args: RunArgs) -> Result<u8, CliError> {
    // The log first (the builder opens it before anything else): if it cannot be
    // written, nothing else happens (fail closed).
    let mut builder = warden_builder(args.policy.as_deref(), args.allow_insecure_policy)
        .audit_rotation(args.audit_rotate);
    if let Some(keep) = args.audit_keep {
        builder = builder.audit_keep(keep);
    }
    if let Some(log) = &args.audit_log {
        builder = builder.audit_log(log);
    }
    if let Some(dir) = &args.workdir {
        builder = builder.workdir(dir);
    }
    if args.no_cache {
        builder = builder.without_cache();
    }
    let warden = builder.build().map_err(|e| host_failure(&e))?;
    if let Some(warning) = warden.cache_warning() {
        eprintln!("warden: warning: {}", escape_line(warning));
    }
    if warden.policy().mode() == Mode::Audit {
        eprintln!("{AUDIT_WARNING}");
    }
    let result = load_and_run(&args, &warden);
    // Every record of this run is appended and fsynced before warden exits; a failure
    // to do so is exit 74 whatever the plugin did.
    match warden.flush() {
        Ok(()) => result,
        Err(e) => Err(host_failure(&e)),
    }
}

fn load_and_run(args: &RunArgs, warden: &Warden) -> Result<u8, CliError> {
    let (plugin_path, plugin_args) = args.plugin_and_args();
    let plugin = match warden.load(&plugin_path).map_err(|e| host_failure(&e))? {
        Loaded::Ready(plugin) => plugin,
        Loaded::Refused(refused) => {
            // The reason is redacted as its `run_end` is.
            let message = escape_line(refused.reason());
            if args.json {
                print_refusal_json(
                    &message,
                    refused.decisions(),
                    refused.run_id(),
                    refused.redactor(),
                );
                return Ok(exit::REFUSED);
            }
            let see = refused
                .run_id()
                .map(|id| format!("; see run {id}"))
                .unwrap_or_default();
            return Err(CliError::new(exit::REFUSED, format!("{message}{see}")));
        }
    };
    let report = plugin.run(plugin_args).map_err(|e| host_failure(&e))?;
    // The records are on disk before anything is shown.
    warden.flush().map_err(|e| host_failure(&e))?;
    let code = report.exit_code();
    if args.json {
        print_json(&report, code, &plugin);
        return Ok(code);
    }
    print_streams(&report);
    let outcome = match &report.result {
        Ok(ExecuteResult::Success(text)) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(escape_text(text).as_bytes());
            if !text.ends_with('\n') {
                let _ = stdout.write_all(b"\n");
            }
            let _ = stdout.flush();
            Ok(0)
        }
        Ok(ExecuteResult::Error(e)) => {
            eprintln!(
                "{}: {}",
                escape_line(&plugin.redactor().redact(&plugin.manifest().command.name)),
                escape_text(&e.message)
            );
            Ok(code)
        }
        Ok(ExecuteResult::Effect(_)) => Ok(code),
        Err(e) => Err(CliError::new(
            e.exit_code(),
            format!(
                "{}: {}",
                escape_line(&plugin_path.display().to_string()),
                escape_line(&plugin.redactor().redact(&e.to_string()))
            ),
        )),
    };
    // After the plugin's own words, which may be a confusing "No such file": what
    // warden withheld, and where to look.
    for line in denial_notice(&report, &plugin, args.verbose) {
        eprintln!("{line}");
    }
    if args.verbose {
        eprintln!(
            "warden: confinement: {}",
            escape_line(&plugin.confinement().summary())
        );
    }
    outcome
}

/// The stderr lines after a run that was denied something: one line counting the
/// denied declared items, the refused WASI calls and the refused requests, naming the
/// run id; with `verbose`, one more line for each, with its rule.
///
/// A denial a rule of the policy names ([`Decision::named_by_policy`]: a deny entry,
/// the plugin's own `stdio` list) is what the administrator wrote: it is not counted,
/// and only `verbose` lists it.
fn denial_notice(report: &RunReport, plugin: &Plugin, verbose: bool) -> Vec<String> {
    let items = plugin.decisions().items();
    let denied: Vec<&Decision> = items
        .iter()
        .filter(|d| d.outcome() != Outcome::Granted)
        .filter(|d| verbose || !d.named_by_policy())
        .collect();
    let would = denied
        .iter()
        .filter(|d| d.outcome() == Outcome::WouldDeny)
        .count();
    let named = denied.iter().filter(|d| d.named_by_policy()).count();
    let calls = report.runtime_denials.recorded.len() as u64 + report.runtime_denials.dropped;
    let requests: Vec<&warden::net::EffectRecord> = report
        .effects
        .iter()
        .filter(|e| e.outcome == warden::net::EffectOutcome::Denied)
        .collect();
    if denied.is_empty() && calls == 0 && requests.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    if denied.len() > would + named {
        parts.push(format!(
            "{} of {} declared items denied",
            denied.len() - would - named,
            items.len()
        ));
    }
    if named > 0 {
        parts.push(format!(
            "{named} of {} declared items denied by name in the policy",
            items.len()
        ));
    }
    if would > 0 {
        parts.push(format!(
            "{would} of {} declared items granted only by audit mode",
            items.len()
        ));
    }
    if calls > 0 {
        parts.push(format!(
            "{calls} call{} refused",
            if calls == 1 { "" } else { "s" }
        ));
    }
    if !requests.is_empty() {
        let n = requests.len();
        parts.push(format!(
            "{n} request{} refused",
            if n == 1 { "" } else { "s" }
        ));
    }
    let mut lines = vec![format!(
        "warden: {}; see run {}{}",
        parts.join(", "),
        plugin.load_id(),
        if verbose { "" } else { " (-v lists them)" }
    )];
    if verbose {
        let r = plugin.redactor();
        let text = |v: &serde_json::Value, key: &str| {
            escape_line(v.get(key).and_then(serde_json::Value::as_str).unwrap_or(""))
        };
        for d in &denied {
            let v = shown(r, *d);
            lines.push(format!(
                "warden:   {} {} {} by `{}`: {}",
                d.outcome().as_str(),
                d.capability().as_str(),
                text(&v, "request"),
                text(&v, "rule"),
                text(&v, "reason")
            ));
        }
        for deny in &report.runtime_denials.recorded {
            let v = shown(r, deny);
            lines.push(format!(
                "warden:   refused {} `{}` ({:?}){}",
                deny.call,
                text(&v, "path"),
                deny.errno,
                match v.get("preopen").and_then(serde_json::Value::as_str) {
                    Some(p) => format!(" under {}", escape_line(p)),
                    None => String::new(),
                }
            ));
        }
        for e in &requests {
            let v = shown(r, *e);
            lines.push(format!(
                "warden:   refused {} {} by `{}`: {}",
                e.kind,
                text(&v, "url"),
                text(&v, "rule"),
                text(&v, "reason")
            ));
        }
    }
    lines
}

/// `value` as the run's records hold it: JSON with every string redacted.
fn shown<T: serde::Serialize + ?Sized>(redactor: &Redactor, value: &T) -> serde_json::Value {
    redactor.to_value(value).unwrap_or(serde_json::Value::Null)
}

fn print_streams(report: &RunReport) {
    if !report.stdout.is_empty() {
        let text = String::from_utf8_lossy(&report.stdout);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(escape_text(&text).as_bytes());
        let _ = out.flush();
    }
    if !report.stderr.is_empty() {
        let text = String::from_utf8_lossy(&report.stderr);
        let _ = std::io::stderr().write_all(escape_text(&text).as_bytes());
    }
}

/// The decisions `run --json` reports: `grants` (granted) and `denials` (denied or
/// would-deny).
fn grants_and_denials(decisions: &Decisions) -> (Vec<&Decision>, Vec<&Decision>) {
    decisions
        .items()
        .iter()
        .partition(|d| d.outcome() == Outcome::Granted)
}

fn print_refusal_json(
    message: &str,
    decisions: &Decisions,
    run_id: Option<&str>,
    redactor: &Redactor,
) {
    let (grants, denials) = grants_and_denials(decisions);
    let value = serde_json::json!({
        "outcome": "refused",
        "output": message,
        "exit_code": exit::REFUSED,
        "grants": shown(redactor, &grants),
        "denials": shown(redactor, &denials),
        "runtime_denials": [],
        "effects": [],
        "fuel_consumed": 0,
        "duration_ms": 0.0,
        "run_id": run_id,
    });
    println!("{}", json_text(&value, false));
}

fn print_json(report: &RunReport, code: u8, plugin: &Plugin) {
    let r = plugin.redactor();
    let (grants, denials) = grants_and_denials(plugin.decisions());
    // The plugin's own result is its output; warden's error is `run_end.error`.
    let (outcome, output) = match &report.result {
        Ok(ExecuteResult::Success(text)) => ("success", serde_json::Value::from(text.as_str())),
        Ok(ExecuteResult::Error(e)) => {
            ("plugin_error", serde_json::Value::from(e.message.as_str()))
        }
        Ok(ExecuteResult::Effect(_)) => ("refused", serde_json::Value::Null),
        Err(e) => (
            e.outcome(),
            serde_json::Value::from(r.redact(&e.to_string()).into_owned()),
        ),
    };
    let value = serde_json::json!({
        "outcome": outcome,
        "output": output,
        "exit_code": code,
        "stdout": String::from_utf8_lossy(&report.stdout),
        "stderr": String::from_utf8_lossy(&report.stderr),
        "grants": shown(r, &grants),
        "denials": shown(r, &denials),
        "runtime_denials": shown(r, &report.runtime_denials.recorded),
        "runtime_denials_dropped": report.runtime_denials.dropped,
        "effects": shown(r, &report.effects),
        "fuel_consumed": report.fuel_consumed,
        "duration_ms": report.duration.as_secs_f64() * 1000.0,
        "run_id": plugin.load_id(),
        "confinement": r.to_value(plugin.confinement()).unwrap_or_default(),
    });
    println!("{}", json_text(&value, false));
}
