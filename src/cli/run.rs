//! `warden run`: load, decide grants, run `plugin_execute`, report.

use super::escape::{escape_line, escape_text, json_text};
use super::policy::{
    AUDIT_WARNING, EXIT_REFUSED, Prepared, load_and_decide, load_policy, policy_source, workdir,
};
use super::{CliError, runtime_failure};
use crate::abi::ExecuteResult;
use crate::audit::{AuditLog, EXIT_AUDIT, PluginInfo, PolicyInfo, Rotation, RunEnd, RunStart};
use crate::grant::{Decision, Decisions, Outcome};
use crate::policy::BUILTIN_NAME;
use crate::policy::Mode;
use crate::runtime::RunReport;
use crate::sandbox::Sandbox;
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};

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
    /// `PATH.YYYY-MM-DD[-HH]`).
    #[arg(long, value_name = "WHEN", default_value = "never")]
    pub audit_rotate: Rotation,
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
    // The log first: if it cannot be written, nothing else happens (fail closed).
    let path = audit_log_path(args.audit_log.as_deref())?;
    let log = open_audit_log(&path, args.audit_rotate)?;
    let result = run_audited(&args, &log);
    // Every record of this run is appended and fsynced before warden exits; a failure
    // to do so is exit 74 whatever the plugin did.
    match log.finish() {
        Ok(_) => result,
        Err(e) => Err(audit_failure(&e)),
    }
}

/// `--audit-log`, else `$WARDEN_AUDIT_LOG`, else `$XDG_STATE_HOME/warden/audit.jsonl`,
/// else `~/.local/state/warden/audit.jsonl`.
fn audit_log_path(arg: Option<&Path>) -> Result<PathBuf, CliError> {
    let from_env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    arg.map(Path::to_path_buf)
        .or_else(|| from_env("WARDEN_AUDIT_LOG"))
        .or_else(|| {
            from_env("XDG_STATE_HOME")
                .filter(|p| p.is_absolute())
                .map(|p| p.join("warden/audit.jsonl"))
        })
        .or_else(|| from_env("HOME").map(|h| h.join(".local/state/warden/audit.jsonl")))
        .ok_or_else(|| {
            CliError::new(
                EXIT_AUDIT,
                "no audit log path: pass --audit-log, or set WARDEN_AUDIT_LOG, XDG_STATE_HOME or HOME",
            )
        })
}

/// Opens (creating its directory, mode 0700, when missing) the audit log.
fn open_audit_log(path: &Path, rotation: Rotation) -> Result<AuditLog, CliError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| {
                CliError::new(
                    EXIT_AUDIT,
                    format!(
                        "cannot create the audit log directory `{}`: {e}; nothing was run",
                        escape_line(&parent.display().to_string())
                    ),
                )
            })?;
    }
    AuditLog::open(path, rotation).map_err(|e| {
        let mut failure = audit_failure(&e);
        failure.message.push_str("; nothing was run");
        failure
    })
}

fn audit_failure(e: &crate::audit::AuditError) -> CliError {
    CliError::new(e.exit_code(), escape_line(&e.to_string()))
}

fn run_audited(args: &RunArgs, log: &AuditLog) -> Result<u8, CliError> {
    let audit = |r: Result<(), crate::audit::AuditError>| r.map_err(|e| audit_failure(&e));
    let mut rec = log.run().map_err(|e| audit_failure(&e))?;

    let policy_path = policy_source(args.policy.as_deref());
    let policy = match load_policy(args.policy.as_deref(), args.allow_insecure_policy) {
        Ok(policy) => policy,
        Err(e) => {
            let info = PolicyInfo {
                path: policy_path
                    .map_or_else(|| BUILTIN_NAME.to_owned(), |p| p.display().to_string()),
                sha256: None,
                mode: Mode::Enforce.as_str().to_owned(),
            };
            audit(rec.policy_rejected(&info, &e.message))?;
            return Err(e);
        }
    };
    audit(rec.policy_loaded(&PolicyInfo {
        path: policy.path().to_owned(),
        sha256: Some(policy.sha256_hex()),
        mode: policy.mode().as_str().to_owned(),
    }))?;
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
    } = match load_and_decide(
        &args.plugin,
        &policy,
        &workdir,
        cache.as_ref(),
        Some(log.path()),
    ) {
        Ok(prepared) => prepared,
        Err(e) => {
            let sha256: [u8; 32] = std::fs::read(&args.plugin)
                .map(|b| Sha256::digest(b).into())
                .unwrap_or_default();
            audit(rec.plugin_rejected(&PluginInfo::unnamed(sha256), &e.message))?;
            return Err(e);
        }
    };
    let manifest = &loaded.manifest;
    audit(rec.plugin_loaded(
        &PluginInfo::new(
            &manifest.command.name,
            manifest.command.version.clone(),
            loaded.instance.sha256(),
        ),
        &manifest.capabilities,
    ))?;
    for decision in decisions.items() {
        audit(if decision.outcome() == Outcome::Granted {
            rec.grant(decision)
        } else {
            rec.deny(decision)
        })?;
    }
    if let Some(refusal) = decisions.refusal() {
        // The refusal's text embeds what the plugin declared (a path, a pattern).
        let message = format!(
            "refused to run plugin `{}`: {}",
            escape_line(decisions.plugin()),
            escape_line(&refusal.to_string())
        );
        audit(rec.run_end(&RunEnd::refused(EXIT_REFUSED, message.clone())))?;
        if args.json {
            print_refusal_json(&message, &decisions);
            return Ok(EXIT_REFUSED);
        }
        return Err(CliError::new(EXIT_REFUSED, message));
    }
    let sandbox = Sandbox::from_decisions(&decisions);
    let limits = decisions.limits().clone();
    if limits.stack != loader.config().limits.stack {
        // The wasm stack ceiling is a property of the engine: reload the same bytes
        // with an engine built for this plugin's stack.
        let loader = super::policy::loader(&args.plugin, &workdir, limits.clone())?;
        loaded = match super::policy::load_with(&loader, &bytes, cache.as_ref()) {
            Ok(loaded) => loaded,
            Err(e) => {
                let failure = runtime_failure(&args.plugin, &e);
                audit(rec.plugin_rejected(
                    &PluginInfo::unnamed(Sha256::digest(&bytes).into()),
                    &failure.message,
                ))?;
                return Err(failure);
            }
        };
    }
    loaded.instance.set_limits(limits);
    loaded.instance.set_sandbox(sandbox);
    // run_start is on disk before the plugin runs, or the plugin does not run.
    audit(rec.run_start(RunStart {
        args: &args.args,
        load: None,
        log_args: policy.log_args(),
        limits: loaded.instance.limits(),
    }))?;
    let report = loaded.instance.run(&args.args);
    let code = report.exit_code();
    audit(rec.run_finished(&report, code))?;
    drop(rec);
    log.sync().map_err(|e| audit_failure(&e))?;
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
    println!("{}", json_text(&value, false));
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
    println!("{}", json_text(&value, false));
}
