//! `warden run`: load, decide grants, run `plugin_execute`, report.

use super::escape::{escape_line, escape_text};
use super::{CliError, read_plugin, runtime_failure};
use crate::abi::ExecuteResult;
use crate::runtime::{Loader, LoaderConfig, RunReport};
use std::io::Write as _;
use std::path::PathBuf;

/// Arguments of `warden run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
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
    let workdir = match &args.workdir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().map_err(|e| {
            CliError::new(
                super::EXIT_NO_INPUT,
                format!("cannot determine the current directory: {e}"),
            )
        })?,
    };
    let bytes = read_plugin(&args.plugin)?;
    let loader =
        Loader::new(LoaderConfig::new(workdir)).map_err(|e| runtime_failure(&args.plugin, &e))?;
    let loaded = loader
        .load(&bytes)
        .map_err(|e| runtime_failure(&args.plugin, &e))?;
    let report = loaded.instance.run(&args.args);
    let code = exit_code(&report);
    if args.json {
        print_json(&report, code);
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

fn print_json(report: &RunReport, code: u8) {
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
        "grants": [],
        "denials": [],
        "fuel_consumed": report.fuel_consumed,
        "duration_ms": report.duration.as_secs_f64() * 1000.0,
    });
    println!("{value}");
}
