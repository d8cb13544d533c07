//! Logs written by someone else: every reviewer tool (`audit verify`, `show`,
//! `summary`, `policy suggest`) treats a log as hostile text. Hand-built JSON Lines
//! put terminal escape sequences, U+202E (right-to-left override) and U+009B (a
//! one-character CSI) in the fields these tools print; nothing of them may reach the
//! terminal raw, and the TOML `suggest` writes must parse back to the very value.

use crate::cli::warden_command;
use serde_json::{Value, json};
use sha2::Digest as _;
use std::path::Path;

/// What an attacker puts in a field: erase the line above, return, paint a green
/// `ok:`, then flip the rest of the line and open a CSI.
const PAINT: &str = "\u{1b}[1A\u{1b}[2K\r\u{1b}[32mok: 9 records\u{1b}[0m\u{202e}txt.exe\u{9b}2J";

/// Chains `records` from seq 0: each gets `v`, `ts` (unless it has one), `seq` and
/// `prev`. serde_json escapes C0 controls in the line; U+202E and U+009B stay raw, as a
/// forger may leave them.
fn chain(records: &[Value]) -> String {
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for (seq, r) in records.iter().enumerate() {
        let mut v = r.as_object().unwrap().clone();
        v.insert("v".into(), 1.into());
        v.entry("ts")
            .or_insert_with(|| "2026-12-02T10:00:00.000Z".into());
        v.insert("seq".into(), seq.into());
        v.insert("prev".into(), prev.clone().into());
        let line = serde_json::to_string(&v).unwrap();
        prev = hex::encode(sha2::Sha256::digest(line.as_bytes()));
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// No control character but `\n`, and no bidirectional or other disguising character.
fn assert_inert(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| (c.is_control() && *c != '\n') || warden::escape::is_disguising(*c))
        .collect();
    assert!(raw.is_empty(), "{what}: raw {raw:?} in\n{text}");
}

fn run(args: &[&str], log: &Path) -> (Option<i32>, String, String) {
    let out = warden_command().args(args).arg(log).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn keygen(dir: &Path) -> String {
    let out = warden_command()
        .args(["audit", "keygen", "--out"])
        .arg(dir.join("ops"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    dir.join("ops.pub").display().to_string()
}

#[test]
fn verify_prints_a_hostile_checkpoints_head_and_key_id_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let load = json!({"event": "policy_loaded", "run_id": "a1"});
    let end = json!({"event": "run_end", "run_id": "a1", "outcome": "refused"});

    // A checkpoint whose `head` paints a fake result over the break line.
    std::fs::write(
        &log,
        chain(&[
            load.clone(),
            end.clone(),
            json!({"event": "checkpoint", "run_id": "c1", "head": PAINT, "records": 2,
                   "key_id": PAINT, "signature": "00"}),
        ]),
    )
    .unwrap();
    let (code, out, err) = run(&["audit", "verify"], &log);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_inert("verify stdout", &out);
    assert_inert("verify stderr", &err);
    assert!(
        out.contains("checkpoint: it signed head \\u{1b}[1A"),
        "{out}"
    );
    assert!(out.lines().last().unwrap().starts_with("break: "), "{out}");

    // A checkpoint that matches the chain, whose `key_id` is the paint: it is
    // checked (and named) only with a key.
    let head = {
        let text = chain(&[load.clone(), end.clone()]);
        let last = text.lines().last().unwrap().to_owned();
        hex::encode(sha2::Sha256::digest(last.as_bytes()))
    };
    std::fs::write(
        &log,
        chain(&[
            load,
            end,
            json!({"event": "checkpoint", "run_id": "c1", "head": head, "records": 2,
                   "key_id": PAINT, "signature": "00"}),
        ]),
    )
    .unwrap();
    let public = keygen(dir.path());
    let (code, out, err) = run(&["audit", "verify", "--key", &public], &log);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_inert("verify --key stdout", &out);
    assert_inert("verify --key stderr", &err);
    assert!(out.contains("signed by key \\u{1b}[1A"), "{out}");
    assert!(out.contains("\\u{202e}txt.exe\\u{9b}2J"), "{out}");

    // A run id that paints, in a run that never ended.
    std::fs::write(
        &log,
        chain(&[json!({"event": "run_start", "run_id": PAINT})]),
    )
    .unwrap();
    let (code, out, err) = run(&["audit", "verify"], &log);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_inert("incomplete run", &out);
    assert!(out.contains("incomplete run: "), "{out}");
}

fn hostile_records() -> Vec<Value> {
    let plugin = json!({"name": PAINT, "version": PAINT, "sha256": PAINT, "path": PAINT});
    let policy = json!({"path": PAINT, "sha256": PAINT, "mode": "audit"});
    vec![
        json!({"event": "policy_loaded", "run_id": PAINT, "policy": policy,
               "who": {"uid": 0, "user": PAINT, "host": PAINT, "pid": 1, "cwd": PAINT}}),
        json!({"event": "plugin_loaded", "run_id": PAINT, "plugin": plugin, "policy": policy}),
        json!({"event": "deny", "run_id": PAINT, "plugin": plugin, "capability": PAINT,
               "request": PAINT, "rule": PAINT, "outcome": "denied",
               "withheld": [{"name": PAINT, "rule": PAINT}]}),
        json!({"event": "run_start", "run_id": PAINT, "plugin": plugin, "args_count": 0}),
        json!({"event": "runtime_deny", "run_id": PAINT, "plugin": plugin, "call": PAINT,
               "path": PAINT, "preopen": PAINT, "errno": PAINT}),
        json!({"event": "effect", "run_id": PAINT, "plugin": plugin, "kind": PAINT,
               "url": format!("http://{PAINT}/"), "outcome": PAINT, "rule": PAINT}),
        json!({"event": "limit_exceeded", "run_id": PAINT, "plugin": plugin, "limit": PAINT,
               "value": PAINT}),
        json!({"event": "run_end", "run_id": PAINT, "plugin": plugin, "outcome": PAINT,
               "exit_code": PAINT, "duration_ms": PAINT, "error": PAINT}),
        json!({"event": "checkpoint", "run_id": PAINT, "head": PAINT, "records": PAINT,
               "key_id": PAINT, "signature": PAINT}),
    ]
}

#[test]
fn show_and_summary_print_hostile_records_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let records = hostile_records();
    std::fs::write(&log, chain(&records)).unwrap();
    for args in [
        &["audit", "show"][..],
        &["audit", "summary"],
        &["audit", "summary", "--json"],
    ] {
        let (code, out, err) = run(args, &log);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert_inert(&format!("{args:?} stdout"), &out);
        assert_inert(&format!("{args:?} stderr"), &err);
        assert!(
            out.contains("\\u{202e}") || out.contains("\\u202e"),
            "{args:?}: {out}"
        );
    }
    // `show --json` prints a line that holds raw bidirectional or C1 characters with
    // them escaped (warden never writes them raw), with the same value, and says so.
    let (code, out, err) = run(&["audit", "show", "--json"], &log);
    assert_eq!(code, Some(0), "{err}");
    assert_inert("show --json stdout", &out);
    assert_inert("show --json stderr", &err);
    let written = std::fs::read_to_string(&log).unwrap();
    let written: Vec<&str> = written.lines().collect();
    let shown: Vec<&str> = out.lines().collect();
    assert_eq!(shown.len(), written.len(), "{out}");
    for (shown, written) in shown.iter().zip(&written) {
        let a: Value = serde_json::from_str(shown).unwrap();
        let b: Value = serde_json::from_str(written).unwrap();
        assert_eq!(a, b);
    }
    assert!(err.contains("printed with them escaped"), "{err}");

    // A line warden could have written is printed byte for byte.
    let clean = chain(&[json!({"event": "policy_loaded", "run_id": "ab\u{1b}c"})]);
    std::fs::write(&log, &clean).unwrap();
    let (code, out, err) = run(&["audit", "show", "--json"], &log);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (Some(0), clean.as_str(), "")
    );
}

/// An audit-mode run whose host path, preopen and plugin name are the paint.
fn hostile_audit_run(name: &str, host_path: &str) -> Vec<Value> {
    let policy = json!({"path": "/p.toml", "mode": "audit"});
    let plugin = json!({"name": name, "sha256": "ab".repeat(32)});
    vec![
        json!({"event": "policy_loaded", "run_id": "r1", "policy": policy}),
        json!({"event": "plugin_loaded", "run_id": "r1", "plugin": plugin, "policy": policy}),
        json!({"event": "grant", "run_id": "r1", "plugin": plugin, "policy": policy,
               "capability": "fs_read", "request": host_path, "host_path": host_path,
               "guest_path": "/data", "recursive": true, "outcome": "would_deny",
               "rule": "none"}),
        json!({"event": "run_start", "run_id": "r1", "plugin": plugin, "policy": policy,
               "args_count": 0}),
        json!({"event": "access", "run_id": "r1", "plugin": plugin, "policy": policy,
               "call": "path_open", "path": "/data/x", "host_path": format!("{host_path}/x"),
               "preopen": "/data", "write": false}),
        json!({"event": "run_end", "run_id": "r1", "plugin": plugin, "policy": policy,
               "outcome": "success", "exit_code": 0}),
    ]
}

#[test]
fn suggest_writes_hostile_host_paths_as_toml_that_parses_back_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let host_path = format!("/srv/{PAINT}\u{7f}\u{85}\u{2066}\u{2028}\"'\\");
    let name = format!("ev{PAINT}il");
    std::fs::write(&log, chain(&hostile_audit_run(&name, &host_path))).unwrap();
    // The audit policy the runs name is not on this machine: name one, whose deny
    // lists the suggestion keeps.
    let policy = dir.path().join("audit.toml");
    std::fs::write(&policy, "version = 1\nmode = \"audit\"\n").unwrap();
    let policy = policy.to_str().unwrap();
    let (code, out, err) = run(&["policy", "suggest", "--policy", policy], &log);
    assert_eq!(code, Some(0), "{err}");
    assert_inert("suggest stdout", &out);
    assert_inert("suggest stderr", &err);
    let doc: toml::Table = out.parse().unwrap_or_else(|e| panic!("{e}\n{out}"));
    let plugins = doc["plugins"].as_table().unwrap();
    assert_eq!(plugins.keys().collect::<Vec<_>>(), [&name], "{out}");
    let read = plugins[&name]["fs"]["read"].as_array().unwrap();
    assert_eq!(read[0].as_str(), Some(host_path.as_str()), "{out}");

    let (code, out, err) = run(&["policy", "suggest", "--json", "--policy", policy], &log);
    assert_eq!(code, Some(0), "{err}");
    assert_inert("suggest --json", &out);
    let back: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back["plugins"][0]["name"], name.as_str());
}
