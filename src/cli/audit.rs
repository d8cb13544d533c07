//! `warden audit`: verify the chain (with keys, heads and checkpoint files, one host
//! or a fleet), show and summarize records, make keys and signed checkpoints.

use super::CliError;
use super::escape::{escape_line, is_disguising, json_text};
use super::suggest::{logs_or_default, time_arg};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use warden::audit::checkpoint::{self, CheckpointError};
use warden::audit::query::{Filter, SHOW_HEADER, Summary, show_row};
use warden::audit::read::{for_each_record, log_set};
use warden::audit::{
    Event, SignedCheckpoint, UnsignedCheckpointFile, VerifyOptions, VerifyReport, verify_files_with,
};
use warden::exit;

/// Arguments of `warden audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of audit log files, given oldest first (default: the
    /// default log and its rotated files): print `ok: N records, head SHA256`, or the
    /// file, line and seq where it breaks (exit 1). A line that is complete JSON but
    /// not a strict record breaks the chain wherever it is. A torn line (a writer
    /// stopped mid-record) is passed over when the next record chains past it and
    /// listed on stderr; a torn last line is reported as torn (exit 1). Every run whose
    /// `run_start` has no `run_end`, and every load that never closed, is listed and
    /// fails verification (exit 1). Every `checkpoint` record must match the chain
    /// before it. With `--key`, every checkpoint's signature must hold, at least one
    /// must be signed by the key, and the records after the last one are reported as
    /// the unsigned tail. `--checkpoint` and `--expect-head` detect a cut or rebuilt
    /// log.
    Verify(VerifyArgs),
    /// Print the records that match every filter: a table (time, run, plugin, event,
    /// what matters), or with `--json` the records unchanged, byte for byte.
    Show(ShowArgs),
    /// Per plugin: loads, runs by outcome (a load that ended without a run is not a
    /// run), grants, denials and audit mode's would-be denials by rule, runtime
    /// denials by call, runs that hit each limit, effects by destination and outcome.
    Summary(SummaryArgs),
    /// Sign the chain head with an ed25519 key: append a `checkpoint` record and write
    /// the checkpoint to a file to keep elsewhere (`--out`, else a new file in the key
    /// holder's own `$XDG_STATE_HOME/warden/checkpoints/`). Prints the log's head with
    /// the checkpoint record included, the one `verify` prints next.
    Checkpoint(CheckpointArgs),
    /// Make an ed25519 key pair for checkpoints: PREFIX.key (mode 0600) and PREFIX.pub.
    Keygen(KeygenArgs),
}

/// Arguments of `warden audit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The public key (PREFIX.pub): every checkpoint's signature must hold for it, at
    /// least one checkpoint must be signed by it, and the records after the last one
    /// are reported as the unsigned tail.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// A head printed by an earlier verify or checkpoint (all 64 hex digits, or at
    /// least their first 12): it must still be in the chain. Repeatable.
    #[arg(long, value_name = "SHA256", value_parser = expect_head_parser)]
    pub expect_head: Vec<String>,
    /// A checkpoint file (`audit checkpoint --out`), signed by `--key`: its signed
    /// head and record count must be in the chain at that seq. With `--hosts`, a
    /// folder of `HOST.checkpoint` files (or one such file), matched to the host
    /// folders by name. Repeatable.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub checkpoint: Vec<PathBuf>,
    /// Verify a set whose first record is not seq 0 (its oldest files deleted) from
    /// where it starts, when a checkpoint signed by `--key` vouches for it; the output
    /// names the first seq and that checkpoint.
    #[arg(long, requires = "key")]
    pub allow_missing_start: bool,
    /// A fleet: DIR holds one folder per host, each with that host's log set
    /// (`audit.jsonl` and its rotated files, or any `*.jsonl`); each host's chain is
    /// verified on its own and reported on its own lines.
    #[arg(long, value_name = "DIR", conflicts_with = "files")]
    pub hosts: Option<PathBuf>,
    /// The log files, oldest first.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `--expect-head`: a head or a long enough prefix of one, else a usage error (exit 2),
/// never a head that the chain then fails to hold.
fn expect_head_parser(given: &str) -> Result<String, String> {
    warden::audit::verify::expected_head(given).map_err(|e| e.to_string())
}

/// The filters of `show` and `summary`.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// Records at or after TIME: RFC 3339 with an offset (`2026-12-01T08:00:00Z`,
    /// `2026-12-01T10:00:00+02:00`), a local date or time (`2026-12-01`,
    /// `2026-12-01T08:00`), a duration ago (`1h`, `7d`), `today` or `yesterday` (local
    /// midnight: `TZ`, else `/etc/localtime`, else UTC).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Records before TIME (same forms).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Records of this plugin (its declared name).
    #[arg(long, value_name = "NAME")]
    pub plugin: Option<String>,
    /// Audit log files, oldest first (default: the default log and its rotated files).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Arguments of `warden audit show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The common filters.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Records of this event (`run_end`, `deny`, `effect`, ...). Repeatable.
    #[arg(long, value_name = "EVENT", value_parser = event_parser())]
    pub event: Vec<String>,
    /// Records whose `outcome` is this (`success`, `limit`, `denied`, `performed`...).
    #[arg(long, value_name = "OUTCOME")]
    pub outcome: Option<String>,
    /// Records of this run (its id, or its first 8 or more digits).
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// The matching records as written (JSON Lines, byte for byte).
    #[arg(long)]
    pub json: bool,
}

/// The events `--event` accepts: every event a record can have, so a misspelt one is a
/// usage error (exit 2, with clap's suggestion) rather than a filter that matches
/// nothing.
const EVENTS: [Event; 13] = [
    Event::PolicyLoaded,
    Event::PolicyRejected,
    Event::PluginLoaded,
    Event::PluginRejected,
    Event::Grant,
    Event::Deny,
    Event::RunStart,
    Event::RuntimeDeny,
    Event::LimitExceeded,
    Event::Effect,
    Event::Access,
    Event::Checkpoint,
    Event::RunEnd,
];

fn event_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(EVENTS.map(Event::as_str))
}

/// Arguments of `warden audit summary`.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    /// The common filters.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `warden audit checkpoint`.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// The secret key (PREFIX.key, mode 0600).
    #[arg(long, value_name = "SECRET")]
    pub key: PathBuf,
    /// Where to write the checkpoint; keep it off the plugin host. An existing file
    /// is replaced (keeping its mode and owner); a symlink is refused. Default: a new
    /// file `LOG-NAME.TIME.checkpoint` in `$XDG_STATE_HOME/warden/checkpoints/`, else
    /// `~/.local/state/warden/checkpoints/` (the key holder's own folder, never the
    /// log's).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The log (default: the default log).
    #[arg(value_name = "LOG")]
    pub log: Option<PathBuf>,
}

/// Arguments of `warden audit keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.key and PREFIX.pub (never overwriting).
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}

pub(super) fn audit(args: AuditArgs) -> Result<u8, CliError> {
    match args.command {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Show(args) => show(&args),
        AuditCommand::Summary(args) => summary(&args),
        AuditCommand::Checkpoint(args) => make_checkpoint(&args),
        AuditCommand::Keygen(args) => keygen(&args),
    }
}

fn key_error(e: &CheckpointError) -> CliError {
    CliError::new(exit::NO_INPUT, escape_line(&e.to_string()))
}

fn verify(args: &VerifyArgs) -> Result<u8, CliError> {
    let key = args
        .key
        .as_deref()
        .map(checkpoint::read_verifying_key)
        .transpose()
        .map_err(|e| key_error(&e))?;
    let options = VerifyOptions {
        key,
        expect_heads: args.expect_head.clone(),
        checkpoint_files: Vec::new(),
        allow_missing_start: args.allow_missing_start,
    };
    if let Some(dir) = &args.hosts {
        let checkpoints = host_checkpoints(&args.checkpoint)?;
        return verify_fleet(dir, &options, checkpoints);
    }
    let mut options = options;
    match signed_checkpoints(&args.checkpoint, options.key.as_ref()) {
        Ok(files) => options.checkpoint_files = files,
        Err(SignedError::Read(e)) => return Err(key_error(&e)),
        Err(SignedError::Unsigned(e)) => {
            println!("{}", escape_line(&format!("break: {e}")));
            return Ok(exit::FAILURE);
        }
    }
    let files = logs_or_default(&args.files)?;
    let report = verify_files_with(&files, &options)
        .map_err(|e| CliError::new(exit::NO_INPUT, escape_line(&e.to_string())))?;
    print_report(&report, "");
    Ok(if report.is_ok() { 0 } else { exit::FAILURE })
}

/// Why checkpoint files cannot be used.
enum SignedError {
    /// A file cannot be read or is not a checkpoint file (exit 66).
    Read(CheckpointError),
    /// A file's signature does not hold for the key (a break, exit 1).
    Unsigned(UnsignedCheckpointFile),
}

/// Reads `files` and checks each one's signature with `key`.
fn signed_checkpoints(
    files: &[PathBuf],
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Vec<SignedCheckpoint>, SignedError> {
    let Some(key) = key else {
        // clap requires `--key` with `--checkpoint`.
        return Ok(Vec::new());
    };
    files
        .iter()
        .map(|file| {
            let c = checkpoint::read_checkpoint(file).map_err(SignedError::Read)?;
            SignedCheckpoint::verify(file, &c, key).map_err(SignedError::Unsigned)
        })
        .collect()
}

/// Every line of a report, each passed through [`escape_line`] at the print (which
/// changes nothing already escaped): the one way log text reaches the terminal.
fn print_report(report: &VerifyReport, prefix: &str) {
    for at in &report.torn_skipped {
        eprintln!(
            "warden: note: {}",
            escape_line(&format!(
                "{prefix}{at}: torn line skipped: a writer stopped mid-record there and the next record follows the one before it"
            ))
        );
    }
    for at in &report.torn_tail {
        eprintln!(
            "warden: note: {}",
            escape_line(&format!(
                "{prefix}{at}: torn line at the end of the log: a writer stopped mid-record there"
            ))
        );
    }
    for run in &report.incomplete_runs {
        println!("{}", escape_line(&format!("{prefix}incomplete run: {run}")));
    }
    if let Some(signed) = report.signed_summary() {
        println!("{}", escape_line(&format!("{prefix}{signed}")));
    }
    println!("{}", escape_line(&format!("{prefix}{}", report.summary())));
}

/// The suffix that names a host's checkpoint file: `HOST.checkpoint`.
const HOST_CHECKPOINT: &str = ".checkpoint";

/// The checkpoint files given with `--hosts`, by host: each folder's
/// `HOST.checkpoint` files, and each file named so.
fn host_checkpoints(paths: &[PathBuf]) -> Result<BTreeMap<String, Vec<PathBuf>>, CliError> {
    let host_of = |path: &Path| -> Option<String> {
        let name = path.file_name()?.to_str()?;
        let host = name.strip_suffix(HOST_CHECKPOINT)?;
        (!host.is_empty()).then(|| host.to_owned())
    };
    let mut by_host: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for path in paths {
        let shown = || escape_line(&path.display().to_string());
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| {
                CliError::new(exit::NO_INPUT, format!("cannot read `{}`: {e}", shown()))
            })?;
            for entry in entries.filter_map(Result::ok) {
                let file = entry.path();
                if let Some(host) = host_of(&file)
                    && file.is_file()
                {
                    by_host.entry(host).or_default().push(file);
                }
            }
        } else if let Some(host) = host_of(path) {
            by_host.entry(host).or_default().push(path.clone());
        } else {
            return Err(CliError::new(
                2,
                format!(
                    "with `--hosts`, `--checkpoint` takes a folder of `HOST.checkpoint` files, or a file named `HOST.checkpoint`, so that each is matched to its host folder: `{}` is neither",
                    shown()
                ),
            ));
        }
    }
    for files in by_host.values_mut() {
        files.sort();
    }
    Ok(by_host)
}

/// Lines per host folder of `dir`; fails when any host's chain fails, when a host has
/// no checkpoint file though checkpoints were given, and when a checkpoint file names
/// a host that has no folder (its logs are missing).
fn verify_fleet(
    dir: &Path,
    options: &VerifyOptions,
    mut checkpoints: BTreeMap<String, Vec<PathBuf>>,
) -> Result<u8, CliError> {
    let read_error = |e: std::io::Error| {
        CliError::new(
            exit::NO_INPUT,
            format!(
                "cannot read `{}`: {e}",
                escape_line(&dir.display().to_string())
            ),
        )
    };
    let mut hosts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    hosts.sort();
    if hosts.is_empty() {
        return Err(CliError::new(
            exit::NO_INPUT,
            format!(
                "`{}` holds no host folders (one folder per host, each with its log files)",
                escape_line(&dir.display().to_string())
            ),
        ));
    }
    let want_checkpoints = !checkpoints.is_empty();
    let mut code = 0;
    // A failed host's line, escaped: log and file names in it are not ours.
    let say = |code: &mut u8, line: String| {
        println!("{}", escape_line(&line));
        *code = exit::FAILURE;
    };
    for host in hosts {
        let host_name = host
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let name = escape_line(&host_name);
        let mut host_options = options.clone();
        match checkpoints.remove(&host_name) {
            Some(files) => match signed_checkpoints(&files, options.key.as_ref()) {
                Ok(signed) => host_options.checkpoint_files = signed,
                Err(SignedError::Read(e)) => {
                    say(&mut code, format!("{name}: {e}"));
                    continue;
                }
                Err(SignedError::Unsigned(e)) => {
                    say(&mut code, format!("{name}: break: {e}"));
                    continue;
                }
            },
            None if want_checkpoints => {
                say(
                    &mut code,
                    format!(
                        "{name}: break: no checkpoint file for this host: checkpoints were given, and none is named `{name}{HOST_CHECKPOINT}`"
                    ),
                );
                continue;
            }
            None => {}
        }
        let files = host_logs(&host);
        if files.is_empty() {
            say(&mut code, format!("{name}: no log files"));
            continue;
        }
        match verify_files_with(&files, &host_options) {
            Ok(report) => {
                print_report(&report, &format!("{name}: "));
                if !report.is_ok() {
                    code = exit::FAILURE;
                }
            }
            Err(e) => say(&mut code, format!("{name}: {e}")),
        }
    }
    for (host, files) in checkpoints {
        for file in files {
            say(
                &mut code,
                format!(
                    "{host}: break: the checkpoint file `{}` names this host, but `{}` has no folder for it: its logs are missing",
                    file.display(),
                    dir.display()
                ),
            );
        }
    }
    Ok(code)
}

/// A host folder's log set: `audit.jsonl` and its rotated files when there, else
/// every `*.jsonl` file with its rotated files, by name.
fn host_logs(host: &Path) -> Vec<PathBuf> {
    let base = host.join("audit.jsonl");
    let set = log_set(&base).unwrap_or_default();
    if !set.is_empty() {
        return set;
    }
    let mut bases: Vec<PathBuf> = std::fs::read_dir(host)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    bases.sort();
    bases
        .iter()
        .flat_map(|b| log_set(b).unwrap_or_default())
        .collect()
}

fn filter_of(args: &FilterArgs) -> Result<(Filter, Vec<PathBuf>), CliError> {
    let filter = Filter {
        since: time_arg("--since", args.since.as_deref())?,
        until: time_arg("--until", args.until.as_deref())?,
        plugin: args.plugin.clone(),
        ..Filter::default()
    };
    Ok((filter, logs_or_default(&args.files)?))
}

fn show(args: &ShowArgs) -> Result<u8, CliError> {
    let (mut filter, files) = filter_of(&args.filter)?;
    filter.events = args.event.clone();
    filter.outcome = args.outcome.clone();
    filter.run = args.run.clone();
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    let mut matched = 0u64;
    for_each_record(&files, |record| {
        if !filter.matches(&record) {
            return;
        }
        matched += 1;
        if args.json {
            if record.raw.chars().any(|c| c.is_control() || is_disguising(c)) {
                // warden writes every control and bidirectional character escaped, so
                // this line was written by someone else: never print it raw.
                eprintln!(
                    "warden: note: {}:{}: the record holds raw control or bidirectional characters (warden writes them escaped): printed with them escaped, so this line is no longer the log's byte for byte",
                    escape_line(&record.file.display().to_string()),
                    record.line
                );
                let _ = writeln!(out, "{}", json_text(&record.value, false));
            } else {
                // Unchanged: the line as written, so it still hashes to the next `prev`.
                let _ = writeln!(out, "{}", record.raw);
            }
        } else {
            rows.push(show_row(&record));
        }
    })
    .map_err(|e| super::read_failure(&e))?;
    if !args.json {
        let header = SHOW_HEADER.map(str::to_owned);
        let widths: Vec<usize> = (0..4)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in std::iter::once(&header).chain(&rows) {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            );
        }
        if matched == 0 {
            eprintln!("warden: no record matches");
        }
    }
    let _ = out.flush();
    Ok(0)
}

fn summary(args: &SummaryArgs) -> Result<u8, CliError> {
    let (filter, files) = filter_of(&args.filter)?;
    let mut summary = Summary::default();
    for_each_record(&files, |record| {
        if filter.matches(&record) {
            summary.add(&record);
        } else {
            summary.note(&record);
        }
    })
    .map_err(|e| super::read_failure(&e))?;
    if args.json {
        let value = serde_json::to_value(&summary).unwrap_or_default();
        println!("{}", json_text(&value, true));
    } else {
        print!("{}", summary.to_text());
    }
    Ok(0)
}

fn make_checkpoint(args: &CheckpointArgs) -> Result<u8, CliError> {
    let key = checkpoint::read_signing_key(&args.key).map_err(|e| key_error(&e))?;
    // Where the file goes is checked before the log gets the record.
    let destination =
        checkpoint::Destination::choose(args.out.as_deref()).map_err(|e| key_error(&e))?;
    let log = match &args.log {
        Some(log) => log.clone(),
        None => warden::host::default_audit_log()
            .map_err(|e| CliError::new(exit::NO_INPUT, escape_line(&e.to_string())))?,
    };
    if log_set(&log).map_or(true, |set| set.is_empty()) {
        return Err(CliError::new(
            exit::NO_INPUT,
            format!(
                "no audit log at `{}`",
                escape_line(&log.display().to_string())
            ),
        ));
    }
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let c = checkpoint::checkpoint(&log, &key, &now).map_err(|e| match e {
        CheckpointError::Audit(a) => CliError::new(exit::AUDIT, escape_line(&a.to_string())),
        other => key_error(&other),
    })?;
    let out = destination.save(&c).map_err(|e| key_error(&e))?;
    // The head as `audit verify` prints it next: after the checkpoint record, which
    // is in the chain now. The signed head is the one before it.
    println!(
        "checkpoint: {} records, head {} (this checkpoint record included, as `warden audit verify` prints it); signed the head of the {} records before it, {}, with key {}; written to {} (keep a copy elsewhere)",
        c.records + 1,
        c.line_sha256,
        c.records,
        c.head,
        c.key_id,
        escape_line(&out.display().to_string())
    );
    Ok(0)
}

fn keygen(args: &KeygenArgs) -> Result<u8, CliError> {
    let (secret, public, id) = checkpoint::keygen(&args.out).map_err(|e| key_error(&e))?;
    println!(
        "key {id}: secret {} (mode 0600: keep it off the plugin hosts), public {}",
        escape_line(&secret.display().to_string()),
        escape_line(&public.display().to_string())
    );
    Ok(0)
}
