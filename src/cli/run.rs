//! `warden run`: load, decide grants, run `plugin_execute`, report.

use super::escape::{escape_line, escape_text};
use super::policy::{AUDIT_WARNING, EXIT_REFUSED, Prepared, load_and_decide, load_policy, workdir};
use super::{CliError, runtime_failure};
use crate::abi::ExecuteResult;
use crate::grant::{Decision, Decisions, Outcome};
use crate::policy::Mode;
use crate::runtime::RunReport;
use crate::sandbox::Sandbox;
use std::io::Write as _;
use std::path::PathBuf;

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
    /// Directory that relative paths in the policy and the manifest resolve against
    /// (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Print one JSON object (outcome, output, exit_code, grants, denials,
    /// fuel_consumed, duration_ms) instead of the plugin's output.
    #[arg(long)]
    pub json: bool,
    /// The plugin module.
    #[arg(value_name = "PLUGIN.wasm")]
    pub plugin: PathBuf,
    /// Arguments passed to the plugin.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

pub(super) fn run(args: RunArgs) -> Result<u8, CliError> {
    let policy = load_policy(args.policy.as_deref(), args.allow_insecure_policy)?;
    if policy.mode() == Mode::Audit {
        eprintln!("{AUDIT_WARNING}");
    }
    let workdir = workdir(args.workdir.as_deref())?;
    let cache = if args.no_cache {
        None
    } else {
        super::policy::default_cache()
    };
    let Prepared {
        bytes,
        loader,
        mut loaded,
        decisions,
    } = load_and_decide(&args.plugin, &policy, &workdir, cache.as_ref())?;
    if let Some(refusal) = decisions.refusal() {
        let message = format!(
            "refused to run plugin `{}`: {refusal}",
            escape_line(decisions.plugin())
        );
        if args.json {
            print_refusal_json(&message, &decisions);
            return Ok(EXIT_REFUSED);
        }
        return Err(CliError::new(EXIT_REFUSED, message));
    }
    let sandbox = Sandbox::from_decisions(&decisions)
        .map_err(|e| CliError::new(e.exit_code(), escape_line(&e.to_string())))?;
    let limits = decisions.limits().clone();
    if limits.stack != loader.config().limits.stack {
        // The wasm stack ceiling is a property of the engine: reload the same bytes
        // with an engine built for this plugin's stack.
        let loader = super::policy::loader(&args.plugin, &workdir, limits.clone())?;
        loaded = super::policy::load_with(&loader, &bytes, cache.as_ref())
            .map_err(|e| runtime_failure(&args.plugin, &e))?;
    }
    loaded.instance.set_limits(limits);
    loaded.instance.set_sandbox(sandbox);
    let report = loaded.instance.run(&args.args);
    let code = exit_code(&report);
    if args.json {
        print_json(&report, code, &decisions);
        return Ok(code);
    }
    print_streams(&report);
    match &report.result {
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
                escape_line(&loaded.manifest.command.name),
                escape_text(&e.message)
            );
            Ok(code)
        }
        Ok(ExecuteResult::Effect(_)) => Ok(code),
        Err(e) => Err(runtime_failure(&args.plugin, e)),
    }
}

/// The exit code for a finished call (`CLI.md`).
fn exit_code(report: &RunReport) -> u8 {
    match &report.result {
        Ok(ExecuteResult::Success(_)) => 0,
        // A plugin error with code 0 must not look like success.
        Ok(ExecuteResult::Error(e)) => e.code.max(1),
        Ok(ExecuteResult::Effect(_)) => 77,
        Err(e) => e.exit_code(),
    }
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

fn print_refusal_json(message: &str, decisions: &Decisions) {
    let (grants, denials) = grants_and_denials(decisions);
    let value = serde_json::json!({
        "outcome": "refused",
        "output": message,
        "exit_code": EXIT_REFUSED,
        "grants": grants,
        "denials": denials,
        "fuel_consumed": 0,
        "duration_ms": 0.0,
    });
    println!("{value}");
}

fn print_json(report: &RunReport, code: u8, decisions: &Decisions) {
    let (grants, denials) = grants_and_denials(decisions);
    let (outcome, output) = match &report.result {
        Ok(ExecuteResult::Success(text)) => ("success", serde_json::Value::from(text.as_str())),
        Ok(ExecuteResult::Error(e)) => {
            ("plugin_error", serde_json::Value::from(e.message.as_str()))
        }
        Ok(ExecuteResult::Effect(_)) => ("refused", serde_json::Value::Null),
        Err(e) => (e.outcome(), serde_json::Value::from(e.to_string())),
    };
    let value = serde_json::json!({
        "outcome": outcome,
        "output": output,
        "exit_code": code,
        "stdout": String::from_utf8_lossy(&report.stdout),
        "stderr": String::from_utf8_lossy(&report.stderr),
        "grants": grants,
        "denials": denials,
        "fuel_consumed": report.fuel_consumed,
        "duration_ms": report.duration.as_secs_f64() * 1000.0,
    });
    println!("{value}");
}
