//! The audit log: record fields, the hash chain and what breaks it, torn lines,
//! rotation, concurrent writers (threads and processes), limits and traps, strings a
//! plugin controls, secrets, failing closed, and `warden audit verify`.

use crate::cli::warden;
use crate::common::*;
use crate::runtime_deny::{examples_policy, host_tree, open_at, probe};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};
use warden::Limits;
use warden::abi::ExecuteResult;
use warden::audit::{
    AuditError, AuditLog, AuditRun, BreakKind, GENESIS, PluginInfo, PolicyInfo, Rotation, RunEnd,
    RunOutcome, RunStart, Verdict, VerifyReport, chain::line_hash, verify_files,
};
use warden::grant::{Host, Outcome, decide};
use warden::host::{Loaded, PolicySource, Warden};
use warden::policy::Policy;
use warden::runtime::RuntimeDeny;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn records(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn policy_info() -> PolicyInfo {
    PolicyInfo {
        path: "policies/examples.toml".into(),
        sha256: Some("ab".repeat(32)),
        mode: "enforce".into(),
    }
}

#[derive(serde::Serialize)]
struct EnvDecision<'a> {
    capability: &'a str,
    request: &'a str,
    names: Vec<&'a str>,
    rule: &'a str,
    reason: &'a str,
    outcome: &'a str,
}

fn env_decision(outcome: &'static str) -> EnvDecision<'static> {
    EnvDecision {
        capability: "env",
        request: "APP_*",
        names: vec!["APP_COLOR"],
        rule: "plugins.x.env.allow[0]",
        reason: "allowed",
        outcome,
    }
}

/// Five records of one run of `hello`: policy_loaded, plugin_loaded, grant, run_start,
/// run_end.
fn hello_run(log: &AuditLog, loaded: &warden::LoadedPlugin) {
    let mut run = log.run().unwrap();
    run.policy_loaded(&policy_info()).unwrap();
    let m = &loaded.manifest;
    run.plugin_loaded(
        &PluginInfo::new(
            &m.command.name,
            m.command.version.clone(),
            loaded.instance.sha256(),
        ),
        &m.capabilities,
    )
    .unwrap();
    run.grant(&env_decision("granted")).unwrap();
    let args = vec!["Ada".to_owned()];
    run.run_start(RunStart {
        args: &args,
        load: None,
        log_args: false,
        limits: loaded.instance.limits(),
        confinement: &warden::confinement::Confinement::in_process(),
    })
    .unwrap();
    let report = loaded.instance.run(&args);
    run.run_finished(&report, report.exit_code()).unwrap();
}

/// A log of `runs` synthetic runs (5 records each: policy_loaded, plugin_loaded, deny,
/// run_start, run_end) at `path`.
fn synthetic_log(path: &Path, runs: usize) {
    let log = AuditLog::open(path, Rotation::Never).unwrap();
    for _ in 0..runs {
        synthetic_run(&log);
    }
    assert_eq!(log.finish().unwrap(), 5 * runs as u64);
}

fn synthetic_run(log: &AuditLog) {
    let mut run = log.run().unwrap();
    run.policy_loaded(&policy_info()).unwrap();
    run.plugin_loaded(
        &PluginInfo::new("synthetic", None, [1; 32]),
        &serde_json::json!({}),
    )
    .unwrap();
    run.deny(&env_decision("denied")).unwrap();
    run.run_start(RunStart {
        args: &[],
        load: None,
        log_args: false,
        limits: &Limits::default(),
        confinement: &warden::confinement::Confinement::in_process(),
    })
    .unwrap();
    run.run_end(&RunEnd {
        outcome: RunOutcome::Limit,
        exit_code: 125,
        fuel_consumed: 10,
        duration_ms: 1.0,
        output_bytes: 0,
        error: Some("fuel ran out".into()),
        runtime_denials_dropped: None,
        effects_dropped: None,
        accesses_dropped: None,
        sleeps: None,
        slept_ms: None,
        signal: None,
    })
    .unwrap();
}

fn verify(files: &[&Path]) -> VerifyReport {
    verify_files(files).unwrap()
}

fn break_of(report: &VerifyReport) -> &warden::audit::Break {
    match &report.verdict {
        Verdict::Break(b) => b,
        other => panic!("expected a break, got {other:?}"),
    }
}

#[test]
fn records_carry_the_contract_fields_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, Rotation::Never).unwrap();
    let loaded = loader().load(&example_bytes("hello")).unwrap();
    hello_run(&log, &loaded);
    assert_eq!(log.finish().unwrap(), 5);

    let lines = lines(&path);
    let recs = records(&path);
    let events: Vec<&str> = recs.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "policy_loaded",
            "plugin_loaded",
            "grant",
            "run_start",
            "run_end"
        ]
    );
    let run_id = recs[0]["run_id"].as_str().unwrap();
    assert!(
        run_id.len() == 32
            && run_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    for (i, r) in recs.iter().enumerate() {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["v", "ts", "seq", "event", "run_id", "prev"] {
            assert!(keys.contains(&k), "record {i} lacks {k}: {r}");
        }
        assert!(lines[i].starts_with(&format!(
            r#"{{"v":1,"ts":"{}","seq":{i},"event":"#,
            r["ts"].as_str().unwrap()
        )));
        assert_eq!(r["v"], 1);
        assert_eq!(r["seq"], i as u64);
        assert_eq!(r["run_id"], run_id);
        let ts = r["ts"].as_str().unwrap();
        assert!(
            humantime::parse_rfc3339(ts).is_ok() && ts.len() == 24 && ts.ends_with('Z'),
            "{ts}"
        );
        let prev = if i == 0 {
            GENESIS.to_owned()
        } else {
            line_hash(lines[i - 1].as_bytes())
        };
        assert_eq!(r["prev"], prev);
        assert_eq!(r["policy"]["path"], "policies/examples.toml");
        assert_eq!(r["policy"]["mode"], "enforce");
    }
    assert!(recs[0].get("plugin").is_none());
    assert_eq!(recs[1]["plugin"]["name"], "hello");
    assert_eq!(
        recs[1]["plugin"]["sha256"],
        hex::encode(loaded.instance.sha256())
    );
    assert_eq!(recs[1]["declared"]["fs_read"], serde_json::json!([]));
    assert_eq!(recs[2]["capability"], "env");
    assert_eq!(recs[2]["outcome"], "granted");
    assert_eq!(recs[3]["args_count"], 1);
    assert!(recs[3].get("args").is_none());
    assert_eq!(recs[3]["limits"]["fuel"], 10_000_000);
    assert_eq!(recs[3]["limits"]["timeout_ms"], 2_000);
    let end = &recs[4];
    assert_eq!(end["outcome"], "success");
    assert_eq!(end["exit_code"], 0);
    assert!(end["fuel_consumed"].as_u64().unwrap() > 0);
    assert!(end["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(end["output_bytes"].as_u64().unwrap() > 0);

    let report = verify(&[&path]);
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.records, 5);
    assert_eq!(report.head, line_hash(lines[4].as_bytes()));
}

#[test]
fn the_policy_engines_decisions_become_grant_and_deny_records() {
    let tree = host_tree();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let loaded = loader().load(&example_bytes("file-reader")).unwrap();
    let host = Host {
        workdir: tree.path().into(),
        home: Some(tree.path().join("home")),
        env: vec![
            ("HOME".into(), "/home/x".into()),
            ("APP_TOKEN".into(), "t".into()),
        ],
        audit_log: None,
    };
    let decisions = decide(
        &loaded.manifest.capabilities,
        "file-reader",
        loaded.instance.sha256(),
        &examples_policy(),
        &host,
    );
    let log = AuditLog::open(&path, Rotation::Never).unwrap();
    let run = log.run().unwrap();
    for d in decisions.items() {
        match d.outcome() {
            Outcome::Granted => run.grant(d).unwrap(),
            _ => run.deny(d).unwrap(),
        }
    }
    drop(run);
    log.finish().unwrap();
    let recs = records(&path);
    assert_eq!(recs.len(), decisions.items().len());
    for (r, d) in recs.iter().zip(decisions.items()) {
        assert_eq!(
            r["event"],
            if d.outcome() == Outcome::Granted {
                "grant"
            } else {
                "deny"
            }
        );
        assert_eq!(r["capability"], d.capability().as_str());
        assert_eq!(r["rule"], d.rule());
        assert_eq!(r["outcome"], d.outcome().as_str());
    }
    // Rule 5: `APP_*` is granted, and its record names what it withholds and why
    // (never a value).
    let app = recs
        .iter()
        .find(|r| r["request"] == "APP_*")
        .expect("a record for APP_*");
    assert_eq!(app["event"], "grant");
    assert_eq!(app["names"], serde_json::json!([]));
    assert_eq!(
        app["withheld"],
        serde_json::json!([{"name": "APP_TOKEN", "rule": "defaults.env.deny[0]"}])
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("\"t\""), "a value reached the log");
}

// ---------------------------------------------------------------------------------
// Tampering: each edit is named at the file, line and seq where the chain stops
// following. A record's own hash is checked by the next record's `prev`, so an edit
// that keeps the JSON valid shows at the next line (AUDIT.md promise 3).

fn tamper_fixture() -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    synthetic_log(&path, 2);
    let lines = lines(&path);
    assert_eq!(verify(&[&path]).verdict, Verdict::Ok);
    (dir, path, lines)
}

#[test]
fn editing_one_byte_is_detected_at_the_next_record() {
    let (_d, path, mut lines) = tamper_fixture();
    // Line 4 is seq 3; change one hex digit of its run_id (the JSON stays valid).
    let at = lines[3].find("\"run_id\":\"").unwrap() + 10;
    let mut bytes = lines[3].clone().into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    lines[3] = String::from_utf8(bytes).unwrap();
    write_lines(&path, &lines);
    let report = verify(&[&path]);
    let b = break_of(&report);
    assert_eq!(
        (b.at.file.as_path(), b.at.line, b.seq),
        (path.as_path(), 5, Some(4))
    );
    assert!(matches!(&b.kind, BreakKind::Prev { previous, previous_seq: 3 } if previous.line == 4));
    assert_eq!(report.records, 4);
}

#[test]
fn editing_a_seq_or_cutting_a_record_is_detected_at_that_line() {
    let (_d, path, lines) = tamper_fixture();
    let mut edited = lines.clone();
    edited[3] = edited[3].replacen("\"seq\":3", "\"seq\":7", 1);
    write_lines(&path, &edited);
    let report = verify(&[&path]);
    let b = break_of(&report);
    assert_eq!((b.at.line, b.seq), (4, Some(7)));
    assert_eq!(
        b.kind,
        BreakKind::Seq {
            expected: 3,
            found: 7
        }
    );

    // A record cut short in the middle (not a crash: the next record points at it).
    let mut edited = lines.clone();
    edited[3].pop();
    write_lines(&path, &edited);
    let b = break_of(&verify(&[&path])).clone();
    assert_eq!((b.at.line, b.seq, b.kind), (4, None, BreakKind::CutRecord));
}

#[test]
fn deleting_a_line_is_detected() {
    let (_d, path, mut lines) = tamper_fixture();
    lines.remove(3);
    write_lines(&path, &lines);
    let report = verify(&[&path]);
    let b = break_of(&report);
    assert_eq!((b.at.line, b.seq), (4, Some(4)));
    assert_eq!(
        b.kind,
        BreakKind::Seq {
            expected: 3,
            found: 4
        }
    );

    let (_d, path, mut lines) = tamper_fixture();
    lines.remove(0);
    write_lines(&path, &lines);
    let b = break_of(&verify(&[&path])).clone();
    assert_eq!(
        (b.at.line, b.seq, b.kind),
        (1, Some(1), BreakKind::Start { seq: 1 })
    );
}

#[test]
fn swapping_two_lines_is_detected() {
    let (_d, path, mut lines) = tamper_fixture();
    lines.swap(3, 4);
    write_lines(&path, &lines);
    let b = break_of(&verify(&[&path])).clone();
    assert_eq!((b.at.line, b.seq), (4, Some(4)));
    assert_eq!(
        b.kind,
        BreakKind::Seq {
            expected: 3,
            found: 4
        }
    );
}

#[test]
fn inserting_a_forged_line_is_detected() {
    // A careful forger gives the line the right seq and prev: the chain breaks at the
    // genuine record that follows it.
    let (_d, path, mut lines) = tamper_fixture();
    let forged = format!(
        r#"{{"v":1,"ts":"2024-01-01T00:00:00.000Z","seq":3,"event":"grant","run_id":"{}","prev":"{}","capability":"fs_write","request":"/"}}"#,
        "f".repeat(32),
        line_hash(lines[2].as_bytes())
    );
    lines.insert(3, forged);
    write_lines(&path, &lines);
    let b = break_of(&verify(&[&path])).clone();
    assert_eq!((b.at.line, b.seq), (5, Some(3)));
    assert_eq!(
        b.kind,
        BreakKind::Seq {
            expected: 4,
            found: 3
        }
    );

    // A copied line is caught where it is.
    let (_d, path, mut lines) = tamper_fixture();
    let copy = lines[1].clone();
    lines.insert(6, copy);
    write_lines(&path, &lines);
    let b = break_of(&verify(&[&path])).clone();
    assert_eq!((b.at.line, b.seq), (7, Some(1)));
    assert_eq!(
        b.kind,
        BreakKind::Seq {
            expected: 6,
            found: 1
        }
    );

    // A foreign line too.
    let (_d, path, mut lines) = tamper_fixture();
    lines.insert(2, r#"{"note":"all fine"}"#.into());
    write_lines(&path, &lines);
    let b = break_of(&verify(&[&path])).clone();
    assert_eq!(b.at.line, 3);
    assert!(matches!(b.kind, BreakKind::NotARecord { .. }));
}

#[test]
fn a_torn_last_line_is_reported_as_torn_and_the_next_writer_goes_on() {
    let (_d, path, lines) = tamper_fixture();
    let mut text = std::fs::read_to_string(&path).unwrap();
    let partial = &lines[2][..lines[2].len() / 2];
    text.push_str(partial);
    std::fs::write(&path, &text).unwrap();
    let report = verify(&[&path]);
    assert_eq!(
        report.verdict,
        Verdict::Torn {
            at: warden::audit::Location {
                file: path.clone(),
                line: 11
            },
            unterminated: true
        }
    );
    assert_eq!(report.records, 10);
    assert_eq!(report.head, line_hash(lines[9].as_bytes()));
    assert!(
        report.summary().starts_with("torn: "),
        "{}",
        report.summary()
    );

    // The next writer ends the torn line and chains to the last complete record.
    let log = AuditLog::open(&path, Rotation::Never).unwrap();
    synthetic_run(&log);
    log.finish().unwrap();
    let report = verify(&[&path]);
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.records, 15);
    assert_eq!(report.torn_skipped.len(), 1);
    assert_eq!(report.torn_skipped[0].line, 11);
}

// ---------------------------------------------------------------------------------
// Rotation.

/// A clock the test moves: seconds since the epoch.
fn test_clock(at: &Arc<AtomicU64>) -> warden::audit::Clock {
    let at = Arc::clone(at);
    Arc::new(move || UNIX_EPOCH + Duration::from_secs(at.load(Ordering::SeqCst)))
}

#[test]
fn rotated_files_verify_as_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("audit.jsonl");
    // 2024-03-05T13:59:00Z
    let t0 = 1_709_647_140;
    let now = Arc::new(AtomicU64::new(t0));
    let a = AuditLog::open_with_clock(&base, Rotation::Hourly, test_clock(&now)).unwrap();
    let b = AuditLog::open_with_clock(&base, Rotation::Hourly, test_clock(&now)).unwrap();
    for (log, secs) in [
        (&a, 0),
        (&b, 30),
        (&a, 120),
        (&b, 150),
        (&a, 3_700),
        (&b, 3_800),
    ] {
        now.store(t0 + secs, Ordering::SeqCst);
        synthetic_run(log);
        log.sync().unwrap();
    }
    assert_eq!(a.finish().unwrap() + b.finish().unwrap(), 30);
    let files: Vec<PathBuf> = ["13", "14", "15"]
        .iter()
        .map(|h| dir.path().join(format!("audit.jsonl.2024-03-05-{h}")))
        .collect();
    let counts: Vec<usize> = files.iter().map(|f| lines(f).len()).collect();
    assert_eq!(counts, [10, 10, 10]);
    assert!(!base.exists(), "with rotation, PATH itself is not written");
    let report = verify_files(&files).unwrap();
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.records, 30);

    // Leaving out the oldest file, or giving them out of order, breaks the chain.
    let b = break_of(&verify_files(&files[1..]).unwrap()).clone();
    assert_eq!(
        (b.at.file, b.at.line, b.kind),
        (files[1].clone(), 1, BreakKind::Start { seq: 10 })
    );
    let b = break_of(&verify_files(&[&files[0], &files[2], &files[1]]).unwrap()).clone();
    assert_eq!((b.at.file, b.at.line), (files[2].clone(), 1));

    // Daily names.
    let day = AuditLog::open_with_clock(
        dir.path().join("day.jsonl"),
        Rotation::Daily,
        test_clock(&now),
    )
    .unwrap();
    synthetic_run(&day);
    day.finish().unwrap();
    assert_eq!(lines(&dir.path().join("day.jsonl.2024-03-05")).len(), 5);
}

/// Bytes the file system gave `path`: its blocks, reserved room included.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Asserts that `path` takes on disk about what it holds by length (a few blocks more
/// at most), not the room reserved past its end.
fn assert_holds_no_reserve(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let allocated = allocated(path);
    assert!(
        allocated <= len.next_multiple_of(4096) + 4 * 4096,
        "{path:?}: {len} bytes long, {allocated} allocated"
    );
}

/// A rotated file is never written again: the room its writers reserved past its end
/// for closing records is released when a newer file starts (by period) or when it is
/// moved aside (by size), while the file being written keeps its own; and the set
/// still verifies.
#[test]
fn a_rotated_file_releases_the_room_reserved_past_its_end() {
    use warden::audit::CLOSING_RESERVE;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("audit.jsonl");
    // 2024-03-05T13:59:00Z, then an hour later.
    let t0 = 1_709_647_140;
    let now = Arc::new(AtomicU64::new(t0));
    let log = AuditLog::open_with_clock(&base, Rotation::Hourly, test_clock(&now)).unwrap();
    let hour = |h: &str| dir.path().join(format!("audit.jsonl.2024-03-05-{h}"));
    synthetic_run(&log);
    log.sync().unwrap();
    assert!(
        allocated(&hour("13")) >= CLOSING_RESERVE,
        "this file system reserves room with fallocate"
    );
    now.store(t0 + 3_600, Ordering::SeqCst);
    synthetic_run(&log);
    log.sync().unwrap();
    assert_holds_no_reserve(&hour("13"));
    assert!(allocated(&hour("14")) >= CLOSING_RESERVE);
    log.finish().unwrap();
    let report = verify_files(&[hour("13"), hour("14")]).unwrap();
    assert_eq!((report.verdict, report.records), (Verdict::Ok, 10));

    // By size: every file moved aside gave its room back.
    let sized = dir.path().join("sized.jsonl");
    let log = AuditLog::open(&sized, Rotation::Size(4096)).unwrap();
    for _ in 0..6 {
        synthetic_run(&log);
        log.sync().unwrap();
    }
    log.finish().unwrap();
    let set = warden::audit::read::log_set(&sized).unwrap();
    assert!(set.len() >= 3, "{set:?}");
    let (current, rotated) = set.split_last().unwrap();
    for file in rotated {
        assert_holds_no_reserve(file);
    }
    assert!(allocated(current) >= CLOSING_RESERVE);
    let report = verify_files(&set).unwrap();
    assert_eq!((report.verdict, report.records), (Verdict::Ok, 30));
}

#[test]
fn tampering_in_a_rotated_file_names_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("audit.jsonl");
    let t0 = 1_709_647_140;
    let now = Arc::new(AtomicU64::new(t0));
    let log = AuditLog::open_with_clock(&base, Rotation::Hourly, test_clock(&now)).unwrap();
    synthetic_run(&log);
    log.sync().unwrap();
    now.store(t0 + 120, Ordering::SeqCst);
    synthetic_run(&log);
    log.finish().unwrap();
    let second = dir.path().join("audit.jsonl.2024-03-05-14");
    let mut l = lines(&second);
    l.remove(1);
    write_lines(&second, &l);
    let first = dir.path().join("audit.jsonl.2024-03-05-13");
    let b = break_of(&verify(&[&first, &second])).clone();
    assert_eq!((b.at.file, b.at.line, b.seq), (second, 2, Some(7)));
}

// ---------------------------------------------------------------------------------
// Concurrent writers.

const RUNS_PER_WRITER: usize = 4;

#[test]
fn eight_threads_append_to_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let log = AuditLog::open(&path, Rotation::Never).unwrap();
                for _ in 0..RUNS_PER_WRITER * 5 {
                    synthetic_run(&log);
                }
                log.finish().unwrap();
            });
        }
    });
    assert_complete_runs(
        &path,
        8 * RUNS_PER_WRITER * 5,
        &[
            "policy_loaded",
            "plugin_loaded",
            "deny",
            "run_start",
            "run_end",
        ],
    );
}

/// Run by [`eight_processes_append_to_one_log`] in child processes.
#[test]
#[ignore = "helper: spawned by eight_processes_append_to_one_log"]
fn concurrent_writer_process() {
    let Some(path) = std::env::var_os("WARDEN_TEST_AUDIT_LOG") else {
        return;
    };
    let loaded = loader().load(&example_bytes("hello")).unwrap();
    let log = AuditLog::open(PathBuf::from(path), Rotation::Never).unwrap();
    for _ in 0..RUNS_PER_WRITER {
        hello_run(&log, &loaded);
    }
    assert_eq!(log.finish().unwrap(), 5 * RUNS_PER_WRITER as u64);
}

#[test]
fn eight_processes_append_to_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "audit::concurrent_writer_process",
                    "--ignored",
                    "--test-threads=1",
                    "-q",
                ])
                .env("WARDEN_TEST_AUDIT_LOG", &path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_complete_runs(
        &path,
        8 * RUNS_PER_WRITER,
        &[
            "policy_loaded",
            "plugin_loaded",
            "grant",
            "run_start",
            "run_end",
        ],
    );
    let out = warden(&["audit", "verify", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("ok: {} records, head ", 8 * RUNS_PER_WRITER * 5))
    );
}

/// The log verifies, holds exactly `runs` runs, and each run's records are `events`,
/// in order.
fn assert_complete_runs(path: &Path, runs: usize, events: &[&str]) {
    let report = verify(&[path]);
    assert_eq!(report.verdict, Verdict::Ok);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records as usize, runs * events.len());
    let mut by_run: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in records(path) {
        by_run
            .entry(r["run_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["event"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_run.len(), runs);
    for (run, evs) in by_run {
        assert_eq!(evs, events, "run {run}");
    }
}

// ---------------------------------------------------------------------------------
// Runs that end badly still leave run_start ... run_end.

fn events_of(run: &AuditRun<'_>, path: &Path) -> Vec<Value> {
    records(path)
        .into_iter()
        .filter(|r| r["run_id"] == run.run_id())
        .collect()
}

#[test]
fn timeouts_fuel_and_traps_leave_run_start_the_cause_and_run_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, Rotation::Never).unwrap();
    let spin = "(loop $l (br $l)) (unreachable)";
    let cases = [
        (
            "spin",
            spin,
            Limits {
                fuel: u64::MAX / 4,
                timeout: Duration::from_millis(200),
                ..Limits::default()
            },
        ),
        (
            "burn",
            spin,
            Limits {
                fuel: 100_000,
                ..Limits::default()
            },
        ),
        ("trap", "(unreachable)", Limits::default()),
    ];
    let mut runs = Vec::new();
    for (name, body, limits) in cases {
        let mut p = WatPlugin::new(name);
        p.execute_fn = Some(body.into());
        let loaded = loader_with(limits.clone()).load(&p.bytes()).unwrap();
        let run = log.run().unwrap();
        run.run_start(RunStart {
            args: &[],
            load: None,
            log_args: false,
            limits: &limits,
            confinement: &warden::confinement::Confinement::in_process(),
        })
        .unwrap();
        let report = loaded.instance.run(&[]);
        run.run_finished(&report, report.exit_code()).unwrap();
        runs.push(run);
    }
    log.sync().unwrap();
    let timeout = events_of(&runs[0], &path);
    let events = |recs: &[Value]| {
        recs.iter()
            .map(|r| r["event"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(events(&timeout), ["run_start", "limit_exceeded", "run_end"]);
    assert_eq!(
        (&timeout[1]["limit"], &timeout[1]["value"]),
        (&Value::from("timeout"), &Value::from(200))
    );
    assert_eq!(
        (&timeout[2]["outcome"], &timeout[2]["exit_code"]),
        (&Value::from("limit"), &Value::from(124))
    );
    let fuel = events_of(&runs[1], &path);
    assert_eq!(events(&fuel), ["run_start", "limit_exceeded", "run_end"]);
    assert_eq!(
        (&fuel[1]["limit"], &fuel[1]["value"]),
        (&Value::from("fuel"), &Value::from(100_000))
    );
    assert_eq!(
        (&fuel[2]["outcome"], &fuel[2]["exit_code"]),
        (&Value::from("limit"), &Value::from(125))
    );
    assert_eq!(fuel[2]["fuel_consumed"], 100_000);
    let trap = events_of(&runs[2], &path);
    assert_eq!(events(&trap), ["run_start", "run_end"]);
    assert_eq!(
        (&trap[1]["outcome"], &trap[1]["exit_code"]),
        (&Value::from("trap"), &Value::from(70))
    );
    assert!(
        trap[1]["error"].as_str().unwrap().contains("unreachable"),
        "{}",
        trap[1]
    );
    drop(runs);
    assert_eq!(log.finish().unwrap(), 8);
    assert_eq!(verify(&[&path]).verdict, Verdict::Ok);
}

// ---------------------------------------------------------------------------------
// Strings a plugin controls.

const HOSTILE: &str = "../x\n{\"v\":1,\"seq\":0,\"event\":\"grant\"}\r\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{202e}\"\\";

/// Printable ASCII and `\n` line ends only: nothing a terminal or a line splitter acts on.
fn assert_inert(text: &str) {
    assert!(
        text.bytes()
            .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "{text:?}"
    );
}

#[test]
fn strings_a_plugin_controls_cannot_forge_or_break_records() {
    let tree = host_tree();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, Rotation::Never).unwrap();
    let mut run = log.run().unwrap();

    // A path the plugin passes to WASI.
    let (loaded, _) = probe(tree.path(), &open_at(3, HOSTILE.len()), HOSTILE.as_bytes());
    let report = loaded.instance().run(&[]);
    assert_eq!(report.runtime_denials.recorded.len(), 1);
    assert_eq!(report.runtime_denials.recorded[0].path, HOSTILE);
    run.run_finished(&report, report.exit_code()).unwrap();

    // An error message that quotes the plugin: a trap's backtrace names the function,
    // and the module's name section is the plugin's to write.
    let mut p = WatPlugin::new("namer");
    p.imports = r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#.into();
    // fd_write with iovecs outside memory: wasmtime-wasi fails the call, and the
    // error's backtrace names the calling function.
    p.extra = format!(
        r#"(func $evil (@name "{}") (drop (call $fd_write (i32.const 1) (i32.const -16) (i32.const 4) (i32.const 0))))"#,
        wat_bytes(HOSTILE.as_bytes())
    );
    p.execute_fn = Some("(call $evil) (i64.const 0)".into());
    let trapped = loader().load(&p.bytes()).unwrap().instance.run(&[]);
    let error = trapped.result.as_ref().unwrap_err().to_string();
    assert!(
        error.contains('\u{1b}') && error.contains('\n'),
        "{error:?}"
    );
    run.run_finished(&trapped, trapped.exit_code()).unwrap();
    run.plugin_rejected(&PluginInfo::unnamed([0; 32]), &error)
        .unwrap();

    // And a declared capability, a runtime deny and a decision built from such text.
    run.runtime_deny(&RuntimeDeny {
        call: "path_open",
        path: HOSTILE.into(),
        target: Some(HOSTILE.into()),
        preopen: Some(HOSTILE.into()),
        errno: warden::runtime::Refusal::Notcapable,
        reason: None,
    })
    .unwrap();
    run.deny(&serde_json::json!({ "capability": "fs_read", "request": HOSTILE }))
        .unwrap();
    drop(run);
    let written = log.finish().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert_inert(&text);
    assert_eq!(text.lines().count() as u64, written);
    let recs = records(&path);
    assert_eq!(recs[0]["event"], "runtime_deny");
    assert_eq!(recs[0]["path"], HOSTILE);
    let ends: Vec<&Value> = recs.iter().filter(|r| r["event"] == "run_end").collect();
    assert_eq!(ends[1]["error"], error);
    let rejected = recs
        .iter()
        .find(|r| r["event"] == "plugin_rejected")
        .unwrap();
    assert_eq!(rejected["error"], error);
    assert!(recs.iter().all(|r| r["run_id"] == recs[0]["run_id"]));
    let report = verify(&[&path]);
    assert_eq!((report.verdict, report.records), (Verdict::Ok, written));
}

#[test]
fn audit_verify_prints_file_names_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a\u{1b}[2Jb\nc.jsonl");
    synthetic_log(&path, 1);
    let mut l = lines(&path);
    l.swap(1, 2);
    write_lines(&path, &l);
    let out = warden(&["audit", "verify", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_inert(&stdout);
    assert!(stdout.starts_with("break: "), "{stdout}");
    assert!(
        stdout.contains("a\\u{1b}[2Jb\\nc.jsonl:2: seq 2: "),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------
// Secrets.

#[test]
fn env_values_and_args_stay_out_of_the_log_unless_log_args() {
    const ALLOWED: &str = "s3cr3t-allowed-7f2a";
    const DENIED: &str = "s3cr3t-denied-91bc";
    let tree = host_tree();
    let path = tree.path().join("audit.jsonl");
    let env = [("HOME", ALLOWED), ("APP_TOKEN", DENIED)];
    let policies = [
        examples_policy(),
        examples_policy(),
        Policy::parse(
            "log-args.toml",
            &format!(
                "{}\n[audit]\nlog_args = true\n",
                std::fs::read_to_string(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples.toml")
                )
                .unwrap()
            ),
        )
        .unwrap(),
    ];
    let mut outputs = Vec::new();
    for (args, policy) in [["env", "HOME"], ["env", "APP_TOKEN"], ["env", "HOME"]]
        .iter()
        .zip(policies)
    {
        let warden = Warden::builder()
            .worker_program(env!("CARGO_BIN_EXE_warden"))
            .policy(PolicySource::Policy(Box::new(policy)))
            .audit_log(&path)
            .without_cache()
            .workdir(tree.path())
            .home(tree.path().join("home"))
            .env(
                env.iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
            )
            .build()
            .unwrap();
        let Loaded::Ready(plugin) = warden.load(example_plugin("file-reader")).unwrap() else {
            panic!("file-reader is not refused by the example policy");
        };
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let report = plugin.run(&args).unwrap();
        outputs.push(report.result.as_ref().unwrap().clone());
        warden.flush().unwrap();
    }
    // The allowed value did reach the plugin (and its output), the denied one did not...
    assert_eq!(outputs[0], ExecuteResult::Success(ALLOWED.into()));
    assert_eq!(outputs[1], ExecuteResult::Success("<unset>".into()));
    // ...and neither is anywhere in the log.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(ALLOWED) && !text.contains(DENIED) && !text.contains("s3cr3t"));
    let starts: Vec<Value> = records(&path)
        .into_iter()
        .filter(|r| r["event"] == "run_start")
        .collect();
    assert_eq!(starts.len(), 3);
    assert!(
        starts[..2]
            .iter()
            .all(|r| r.get("args").is_none() && r["args_count"] == 2)
    );
    assert_eq!(starts[2]["args"], serde_json::json!(["env", "HOME"]));
}

// ---------------------------------------------------------------------------------
// Failing closed.

#[test]
fn a_log_that_cannot_be_opened_or_continued_fails_with_74() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "dear diary\n").unwrap();
    type Expect = fn(&AuditError) -> bool;
    let cases: [(PathBuf, Expect); 4] = [
        (file.join("audit.jsonl"), |e| {
            matches!(e, AuditError::Open { .. })
        }),
        (dir.path().to_path_buf(), |e| {
            matches!(e, AuditError::Open { .. } | AuditError::NotAFile { .. })
        }),
        (PathBuf::from("/dev/null"), |e| {
            matches!(e, AuditError::NotAFile { .. })
        }),
        (text.clone(), |e| {
            matches!(e, AuditError::NotAnAuditLog { .. })
        }),
    ];
    for (path, expected) in cases {
        let err = AuditLog::open(&path, Rotation::Never).unwrap_err();
        assert!(expected(&err), "{}: {err:?}", path.display());
        assert_eq!(err.exit_code(), 74);
    }
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "dear diary\n");
    let err = AuditLog::open(file.join("audit.jsonl"), Rotation::Hourly).unwrap_err();
    assert_eq!(err.exit_code(), 74);
}

#[test]
fn decisions_cannot_set_the_fields_the_log_owns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, Rotation::Never).unwrap();
    let run = log.run().unwrap();
    for field in ["seq", "prev", "run_id", "event", "plugin"] {
        let err = run
            .grant(&serde_json::json!({ field: 1, "capability": "env" }))
            .unwrap_err();
        assert!(
            matches!(err, AuditError::ReservedField { field: ref f, .. } if f == field),
            "{err}"
        );
    }
    assert!(matches!(
        run.deny(&"just a string"),
        Err(AuditError::Record { .. })
    ));
    drop(run);
    assert_eq!(log.finish().unwrap(), 0);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

// ---------------------------------------------------------------------------------
// `warden audit verify`.

#[test]
fn audit_verify_reports_ok_break_torn_and_missing_files() {
    let (_d, path, lines) = tamper_fixture();
    let file = path.to_str().unwrap();
    let out = warden(&["audit", "verify", file]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("ok: 10 records, head {}\n", line_hash(lines[9].as_bytes()))
    );

    let mut edited = lines.clone();
    edited.remove(6);
    write_lines(&path, &edited);
    let out = warden(&["audit", "verify", file]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("break: {file}:7: seq 7: ")),
        "{stdout}"
    );

    write_lines(&path, &lines);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&lines[0][..20]);
    std::fs::write(&path, text).unwrap();
    let out = warden(&["audit", "verify", file]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!(
            "torn: {file}:11: the last line is an incomplete record"
        )),
        "{stdout}"
    );

    let out = warden(&["audit", "verify", "/nonexistent/audit.jsonl"]);
    assert_eq!(out.status.code(), Some(66));
}

/// `warden audit verify FILE`: (exit code, stdout, stderr).
fn verify_cli(path: &Path) -> (Option<i32>, String, String) {
    let out = warden(&["audit", "verify", path.to_str().unwrap()]);
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A forged record for the tamper fixture: `fields` after the common ones.
fn forged(seq: &str, event: &str, run_id: &Value, prev: &str, fields: &str) -> String {
    format!(
        r#"{{"v":1,"ts":"2024-01-01T00:00:00.000Z","seq":{seq},"event":"{event}","run_id":{run_id},"prev":{prev}{fields}}}"#
    )
}

/// Inserts `line` before index `at` of the fixture's lines; verify must exit 1 and
/// name the inserted line (1-based `at + 1`), and jq-like readers must read it as a
/// record.
fn assert_inserted_line_breaks_the_chain(at: usize, line: &str, what: &str) {
    let (_d, path, mut lines) = tamper_fixture();
    lines.insert(at, line.to_owned());
    write_lines(&path, &lines);
    let file = path.to_str().unwrap();
    let (code, stdout, stderr) = verify_cli(&path);
    assert_eq!(code, Some(1), "{what}: {stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("break: {file}:{}: ", at + 1)),
        "{what}: {stdout}"
    );
    assert!(!stderr.contains("torn"), "{what}: {stderr}");
    let report = verify(&[&path]);
    assert_eq!(break_of(&report).at.line, at as u64 + 1, "{what}");
    assert!(report.torn_skipped.is_empty(), "{what}");
}

#[test]
fn a_json_line_with_a_repeated_key_is_a_break_not_a_torn_line() {
    // Valid JSON that jq reads as a `grant` (the last `event` wins), with the right
    // seq and prev: strict decoding refuses it, and it is complete JSON, so it is not
    // torn either. Before, verify passed over it as torn and printed `ok`.
    let (_d, path, lines) = tamper_fixture();
    let first = records(&path);
    let line = forged(
        "3",
        r#"deny","event":"grant"#,
        &first[2]["run_id"],
        &format!("\"{}\"", line_hash(lines[2].as_bytes())),
        r#","capability":"fs_write","request":"/","host_path":"/","rule":"plugins.synthetic.fs.write[0]","reason":"allowed","outcome":"granted""#,
    );
    let read: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(read["event"], "grant");
    assert_inserted_line_breaks_the_chain(3, &line, "repeated `event`");
    // Repeated elsewhere, also nested or spelled with an escape.
    for fields in [
        r#","outcome":"denied","outcome":"granted""#,
        r#","declared":{"fs_write":[{"pattern":"/"}],"fs_write":[]}"#,
        r#","outcome":"denied","outc\u006fme":"granted""#,
    ] {
        let line = forged(
            "3",
            "grant",
            &first[2]["run_id"],
            &format!("\"{}\"", line_hash(lines[2].as_bytes())),
            fields,
        );
        assert!(serde_json::from_str::<Value>(&line).is_ok());
        assert_inserted_line_breaks_the_chain(3, &line, fields);
    }
}

#[test]
fn a_forged_grant_with_a_wrong_prev_is_a_break_where_it_is() {
    let (_d, p, lines) = tamper_fixture();
    let run_id = records(&p)[2]["run_id"].clone();
    let grant = r#","capability":"fs_write","request":"/","host_path":"/","rule":"plugins.synthetic.fs.write[0]","reason":"allowed","outcome":"granted""#;
    let right = format!("\"{}\"", line_hash(lines[2].as_bytes()));
    for (seq, prev, what) in [
        ("3", format!("\"{}\"", "0".repeat(64)), "a wrong hash"),
        ("3", "null".to_owned(), "null"),
        ("3", "7".to_owned(), "a number"),
        ("3", format!("[{right}]"), "an array holding the right hash"),
        ("\"3\"", right.clone(), "the right prev and a string seq"),
        ("3.0", right.clone(), "the right prev and a float seq"),
    ] {
        let line = forged(seq, "grant", &run_id, &prev, grant);
        assert!(serde_json::from_str::<Value>(&line).is_ok(), "{what}");
        assert_inserted_line_breaks_the_chain(3, &line, what);
    }
    // No prev at all.
    let line = format!(
        r#"{{"v":1,"ts":"2024-01-01T00:00:00.000Z","seq":3,"event":"grant","run_id":{run_id}{grant}}}"#
    );
    assert_inserted_line_breaks_the_chain(3, &line, "no prev");
}

#[test]
fn a_forged_run_end_in_the_middle_of_the_chain_is_a_break() {
    // Between the second run's run_start (line 9) and its real run_end, a `run_end`
    // claiming success, that a reader takes for the run's outcome.
    let (_d, p, lines) = tamper_fixture();
    let run_id = records(&p)[8]["run_id"].clone();
    let end = r#","outcome":"success","exit_code":0,"fuel_consumed":1,"duration_ms":1.0,"output_bytes":2"#;
    let right = format!("\"{}\"", line_hash(lines[8].as_bytes()));
    for (line, what) in [
        (
            forged("9.0", "run_end", &run_id, &right, end),
            "a float seq",
        ),
        (forged("9", "run_end", &run_id, "null", end), "a null prev"),
        (
            forged(
                "9",
                "run_end",
                &run_id,
                &right,
                &format!(r#"{end},"seq":9"#),
            ),
            "a repeated seq",
        ),
        // Complete JSON and more after it: not a JSON value, but not cut short
        // either (jq prints the record, then complains).
        (
            format!("{} }}", forged("9", "run_end", &run_id, "null", end)),
            "trailing text",
        ),
    ] {
        assert_inserted_line_breaks_the_chain(9, &line, what);
    }
}

#[test]
fn torn_lines_are_passed_over_only_when_cut_short_and_each_is_listed() {
    // A record cut mid-way (a writer crashed), then the next writer's record, which
    // chains to the last complete one: accepted, and the torn line is named.
    let (_d, path, mut lines) = tamper_fixture();
    let cut = lines[3][..lines[3].len() / 2].to_owned();
    lines.insert(3, cut.clone());
    let cut_early = lines[8][..30].to_owned();
    lines.insert(8, cut_early);
    write_lines(&path, &lines);
    let file = path.to_str().unwrap();
    let (code, stdout, stderr) = verify_cli(&path);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("ok: 10 records, head "), "{stdout}");
    for line in [4, 9] {
        assert!(
            stderr.contains(&format!("{file}:{line}: torn line skipped")),
            "{stderr}"
        );
    }
    let report = verify(&[&path]);
    assert_eq!(
        report
            .torn_skipped
            .iter()
            .map(|l| l.line)
            .collect::<Vec<_>>(),
        [4, 9]
    );

    // Torn lines at the end are listed too, and the log is reported torn.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("{cut}\n{cut}"));
    std::fs::write(&path, text).unwrap();
    let (code, stdout, stderr) = verify_cli(&path);
    assert_eq!(code, Some(1));
    assert!(
        stdout.starts_with(&format!("torn: {file}:13: ")),
        "{stdout}"
    );
    for line in [13, 14] {
        assert!(
            stderr.contains(&format!("{file}:{line}: torn line at the end")),
            "{stderr}"
        );
    }
    let report = verify(&[&path]);
    assert_eq!(
        report.torn_tail.iter().map(|l| l.line).collect::<Vec<_>>(),
        [13, 14]
    );
}

#[test]
fn a_run_without_run_end_is_incomplete() {
    let (_d, path, mut lines) = tamper_fixture();
    let run_id = records(&path)[8]["run_id"].as_str().unwrap().to_owned();
    lines.pop();
    write_lines(&path, &lines);
    let report = verify(&[&path]);
    assert_eq!((report.verdict.clone(), report.records), (Verdict::Ok, 9));
    assert!(!report.is_ok());
    assert_eq!(report.incomplete_runs.len(), 1);
    let run = &report.incomplete_runs[0];
    assert_eq!(
        (run.run_id.as_str(), run.run_start.line, run.seq),
        (run_id.as_str(), 9, 8)
    );

    // A break says nothing about runs: what follows it cannot be trusted.
    lines.remove(6);
    write_lines(&path, &lines);
    let report = verify(&[&path]);
    assert!(matches!(report.verdict, Verdict::Break(_)));
    assert!(report.incomplete_runs.is_empty());
}

/// A load that wrote its decisions and never closed (no `run_start`, no `run_end`) is
/// incomplete too: its last records were lost, or warden stopped mid-load.
#[test]
fn a_load_that_never_closed_is_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    synthetic_log(&path, 1);
    let log = AuditLog::open(&path, Rotation::Never).unwrap();
    let mut run = log.run().unwrap();
    run.policy_loaded(&policy_info()).unwrap();
    run.plugin_loaded(
        &PluginInfo::new("synthetic", None, [1; 32]),
        &serde_json::json!({}),
    )
    .unwrap();
    run.grant(&env_decision("granted")).unwrap();
    let id = run.run_id().to_owned();
    drop(run);
    log.finish().unwrap();

    let report = verify(&[&path]);
    assert_eq!((report.verdict.clone(), report.records), (Verdict::Ok, 8));
    assert!(!report.is_ok());
    let open: Vec<(&str, u64, u64, bool)> = report
        .incomplete_runs
        .iter()
        .map(|r| (r.run_id.as_str(), r.run_start.line, r.seq, r.started))
        .collect();
    assert_eq!(open, [(id.as_str(), 6, 5, false)]);
    let (code, stdout, _) = verify_cli(&path);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "incomplete run: {}:6: seq 5: load {id} has records but neither a run_start nor a run_end",
            path.display()
        )),
        "{stdout}"
    );
}
