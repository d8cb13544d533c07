//! The reviewer's loop, on real logs written by `warden run`: `who` and absolute paths
//! on the records, one `run_end` per run id (rejected loads included), `audit show`
//! filters, `audit summary` against a hand count, signed checkpoints against a cut
//! tail and a rebuilt chain, a rotated set whose oldest file was deleted, and a fleet.

use crate::common::*;
use crate::network::{get, http, scripted};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use warden::abi::ExecuteResult;
use warden::audit::{AuditLog, Rotation};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn warden_in(dir: &Path, args: &[&str]) -> Output {
    crate::cli::warden_command()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// A log of every kind of run: successes, a plugin error, a trap, a limit, a
/// refusal, rejected loads, runtime denials and network effects.
struct History {
    dir: tempfile::TempDir,
}

impl History {
    fn log(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn arg(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    fn run(&self, policy: &str, plugin: &Path, args: &[&str]) -> Output {
        let log = self.arg("audit.jsonl");
        let policy = self.arg(policy);
        let plugin = plugin.display().to_string();
        let mut all = vec!["run", "--audit-log", &log, "--policy", &policy, &plugin];
        all.extend_from_slice(args);
        warden_in(self.dir.path(), &all)
    }

    fn new() -> History {
        let h = History {
            dir: tempfile::tempdir().unwrap(),
        };
        let d = h.dir.path();
        std::fs::create_dir(d.join("data")).unwrap();
        std::fs::write(d.join("data/notes.txt"), "notes").unwrap();
        std::fs::write(d.join("secret.txt"), "secret").unwrap();
        crate::policy::policy_file(
            d,
            "p.toml",
            "version = 1\n[plugins.file-reader]\nfs.read = [\"./data\"]\nstdio = [\"stdout\"]\n[plugins.net-probe]\nstdio = [\"stdout\"]\nnet.allow = [\"http://127.0.0.1:9\"]\n[plugins.trapper]\n",
        );
        crate::policy::policy_file(
            d,
            "tight.toml",
            "version = 1\n[plugins.hello]\nfuel = 1000\n",
        );
        crate::policy::policy_file(
            d,
            "pinned.toml",
            &format!(
                "version = 1\n[plugins.hello]\nsha256 = \"{}\"\n",
                "a".repeat(64)
            ),
        );
        crate::policy::policy_file(d, "bad.toml", "version = 2\n");
        let mut trapper = WatPlugin::new("trapper");
        trapper.execute_fn = Some("(unreachable)".into());
        std::fs::write(d.join("trapper.wasm"), trapper.bytes()).unwrap();
        std::fs::write(
            d.join("net-probe.wasm"),
            scripted(
                vec![http("127.0.0.1", 9)],
                &[
                    get("http://127.0.0.1:9/"),
                    get("http://169.254.169.254/latest/meta-data/"),
                    ExecuteResult::Success("done".into()),
                ],
            ),
        )
        .unwrap();
        std::fs::write(d.join("not.wasm"), "not wasm").unwrap();

        let hello = example_plugin("hello");
        let reader = example_plugin("file-reader");
        let codes: Vec<Option<i32>> = vec![
            h.run("p.toml", &hello, &[]).status.code(),
            h.run("p.toml", &hello, &["Ada"]).status.code(),
            h.run("p.toml", &reader, &["read", "notes.txt"])
                .status
                .code(),
            h.run("p.toml", &reader, &[]).status.code(),
            h.run("p.toml", &reader, &["read", "../secret.txt"])
                .status
                .code(),
            h.run("p.toml", &h.path("trapper.wasm"), &[]).status.code(),
            h.run("tight.toml", &hello, &[]).status.code(),
            h.run("pinned.toml", &hello, &[]).status.code(),
            h.run("bad.toml", &hello, &[]).status.code(),
            h.run("p.toml", &h.path("not.wasm"), &[]).status.code(),
            h.run("p.toml", &h.path("net-probe.wasm"), &[])
                .status
                .code(),
        ];
        assert_eq!(
            codes,
            [0, 0, 0, 1, 1, 70, 125, 77, 78, 65, 0].map(Some),
            "the history's runs"
        );
        h
    }
}

#[test]
fn every_run_says_who_and_has_exactly_one_run_end() {
    let h = History::new();
    let records = log_records(&h.log());
    let mut first: HashMap<&str, &serde_json::Value> = HashMap::new();
    let mut ends: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        let id = r["run_id"].as_str().unwrap();
        first.entry(id).or_insert(r);
        if r["event"] == "run_end" {
            *ends.entry(id).or_default() += 1;
        }
        if let Some(path) = r["plugin"]["path"].as_str() {
            assert!(Path::new(path).is_absolute(), "{r}");
        }
        if let Some(path) = r["policy"]["path"].as_str() {
            assert!(Path::new(path).is_absolute(), "{r}");
        }
    }
    assert_eq!(first.len(), 11, "one run id per load");
    for (id, r) in &first {
        assert_eq!(ends.get(id), Some(&1), "run {id}: {r}");
        let who = &r["who"];
        assert_eq!(
            who["uid"],
            u64::from(rustix::process::getuid().as_raw()),
            "{r}"
        );
        assert!(who["user"].is_string() || who["user"].is_null(), "{r}");
        assert!(who["host"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        assert!(who["pid"].as_u64().is_some_and(|p| p > 0), "{r}");
        assert_eq!(
            who["cwd"].as_str().map(PathBuf::from),
            Some(h.dir.path().to_path_buf()),
            "{r}"
        );
    }
    let outcomes: Vec<&str> = records
        .iter()
        .filter(|r| r["event"] == "run_end")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "success",
            "success",
            "success",
            "plugin_error",
            "plugin_error",
            "trap",
            "limit",
            "refused",
            "rejected",
            "rejected",
            "success"
        ]
    );
    assert_log_verifies(&h.log());
}

/// `audit show` with each filter prints exactly the records that match it, and
/// `--json` prints them byte for byte as the log holds them.
#[test]
fn show_prints_exactly_the_matching_records() {
    let h = History::new();
    let log = h.log();
    let raw = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = raw.lines().collect();
    let records = log_records(&log);
    let show = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["audit", "show", "--json"];
        all.extend_from_slice(args);
        let log = log.display().to_string();
        all.push(&log);
        let out = warden_in(h.dir.path(), &all);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).lines().map(str::to_owned).collect()
    };
    let expect = |keep: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
        records
            .iter()
            .zip(&lines)
            .filter(|(r, _)| keep(r))
            .map(|(_, l)| l.to_string())
            .collect()
    };
    let reader_run = records
        .iter()
        .find(|r| r["event"] == "runtime_deny")
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    type Keep<'a> = Box<dyn Fn(&serde_json::Value) -> bool + 'a>;
    let cases: Vec<(Vec<&str>, Keep<'_>)> = vec![
        (vec![], Box::new(|_| true)),
        (
            vec!["--event", "run_end"],
            Box::new(|r| r["event"] == "run_end"),
        ),
        (
            vec!["--event", "deny", "--event", "effect"],
            Box::new(|r| r["event"] == "deny" || r["event"] == "effect"),
        ),
        (
            vec!["--plugin", "hello"],
            Box::new(|r| r["plugin"]["name"] == "hello"),
        ),
        (
            vec!["--outcome", "plugin_error"],
            Box::new(|r| r["outcome"] == "plugin_error"),
        ),
        (
            vec!["--run", &reader_run[..10]],
            Box::new(|r| r["run_id"] == reader_run.as_str()),
        ),
        (vec!["--since", "1h"], Box::new(|_| true)),
        (vec!["--since", "2999-01-01"], Box::new(|_| false)),
        (vec!["--until", "2000-01-01T00:00:00Z"], Box::new(|_| false)),
        (
            vec![
                "--plugin",
                "file-reader",
                "--event",
                "run_end",
                "--outcome",
                "plugin_error",
            ],
            Box::new(|r| {
                r["plugin"]["name"] == "file-reader"
                    && r["event"] == "run_end"
                    && r["outcome"] == "plugin_error"
            }),
        ),
    ];
    for (args, keep) in &cases {
        let got = show(args);
        assert_eq!(got, expect(keep.as_ref()), "audit show {args:?}");
    }
    // The unfiltered output is the log: it verifies.
    let copy = h.path("copy.jsonl");
    std::fs::write(&copy, show(&[]).join("\n") + "\n").unwrap();
    assert_log_verifies(&copy);

    // The table: a header and one escaped line per record.
    let out = warden_in(
        h.dir.path(),
        &[
            "audit",
            "show",
            "--event",
            "runtime_deny",
            &h.arg("audit.jsonl"),
        ],
    );
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("TIME "), "{table}");
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[1].contains("file-reader  runtime_deny  path_open ../secret.txt"),
        "{table}"
    );
}

/// `audit summary` counts what a hand count of the same log finds.
#[test]
fn summary_counts_match_a_hand_count() {
    let h = History::new();
    let out = warden_in(
        h.dir.path(),
        &["audit", "summary", "--json", &h.arg("audit.jsonl")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &s["plugins"];
    // The pinned policy refused one load of hello: it never ran, so it is no run.
    assert_eq!(
        p["hello"]["runs"],
        serde_json::json!({"success": 2, "limit": 1})
    );
    assert_eq!(p["hello"]["loads"], 4);
    assert_eq!(
        p["hello"]["loads_not_run"],
        serde_json::json!({"refused": 1})
    );
    // Loads that ended before a plugin was read: the rejected policy, the non-wasm file.
    assert_eq!(p["-"]["runs"], serde_json::json!({}));
    assert_eq!(p["-"]["loads_not_run"], serde_json::json!({"rejected": 2}));
    assert_eq!(p["hello"]["limits"], serde_json::json!({"fuel": 1}));
    assert_eq!(
        p["file-reader"]["runs"],
        serde_json::json!({"success": 1, "plugin_error": 2})
    );
    assert_eq!(p["file-reader"]["grants"], 3 * 2);
    assert_eq!(
        p["file-reader"]["denials"],
        serde_json::json!({"none": 3 * 2})
    );
    assert_eq!(
        p["file-reader"]["runtime_denials"],
        serde_json::json!({"path_open": 1})
    );
    assert_eq!(p["trapper"]["runs"], serde_json::json!({"trap": 1}));
    assert_eq!(p["net-probe"]["runs"], serde_json::json!({"success": 1}));
    assert_eq!(
        p["net-probe"]["effects"],
        serde_json::json!({
            "http://127.0.0.1:9": {"failed": 1},
            "http://169.254.169.254:80": {"denied": 1},
        })
    );
    let user = p["hello"]["users"][0].as_str().unwrap();
    assert!(!user.is_empty());
    // The text form says the same.
    let out = warden_in(
        h.dir.path(),
        &[
            "audit",
            "summary",
            "--plugin",
            "hello",
            &h.arg("audit.jsonl"),
        ],
    );
    let t = text(&out.stdout);
    assert!(
        t.starts_with(
            "hello\n  loads               4 (1 ended without a run: refused 1)\n  runs                3 (limit 1, success 2)\n"
        ),
        "{t}"
    );
    assert!(t.contains("  limits hit          fuel 1\n"), "{t}");
}

/// A log where one plugin was denied items under enforce and ran under audit mode, a
/// host loaded a plugin and dropped it unrun, and a run asked for more requests than
/// `max_requests`: `summary` counts would-be denials apart from denials, the unrun
/// load as a load and not a run, and the request limit as a limit hit; `show` prints
/// what a grant passed and where a directory is.
#[test]
fn summary_tells_denials_from_would_deny_loads_from_runs_and_counts_every_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("audit.jsonl");
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(d.join("data/notes.txt"), "notes").unwrap();
    crate::policy::policy_file(
        d,
        "enforce.toml",
        "version = 1\n[defaults]\nenv.deny = [\"*SECRET*\"]\n[plugins.file-reader]\nfs.read = [\"./data\"]\nenv.allow = [\"APP_*\"]\nstdio = [\"stdout\"]\n[plugins.net-probe]\nstdio = [\"stdout\"]\nnet.allow = [\"http://127.0.0.1:9\"]\nnet.max_requests = 1\n",
    );
    crate::policy::policy_file(d, "audit.toml", "version = 1\nmode = \"audit\"\n");
    let probe = d.join("net-probe.wasm");
    let refused = get("http://127.0.0.1:9/again");
    let script = [
        get("http://127.0.0.1:9/"),
        refused,
        ExecuteResult::Success("done".into()),
    ];
    std::fs::write(&probe, scripted(vec![http("127.0.0.1", 9)], &script)).unwrap();
    let reader = example_plugin("file-reader");
    for (policy, plugin, args) in [
        ("enforce.toml", &reader, &["read", "notes.txt"][..]),
        ("audit.toml", &reader, &["read", "notes.txt"][..]),
        ("enforce.toml", &probe, &[][..]),
    ] {
        let mut all = vec![
            "run",
            "--audit-log",
            log.to_str().unwrap(),
            "--policy",
            policy,
        ];
        all.push(plugin.to_str().unwrap());
        all.extend_from_slice(args);
        let out = crate::cli::warden_command()
            .current_dir(d)
            .env("APP_MODE", "fast")
            .env("APP_SECRET", "hush")
            .args(&all)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{all:?}: {}", text(&out.stderr));
    }
    // An application loads hello and drops it without running it.
    let host = warden::host::Warden::builder()
        .worker_program(env!("CARGO_BIN_EXE_warden"))
        .policy_file(d.join("enforce.toml"))
        .audit_log(&log)
        .workdir(d)
        .build()
        .unwrap();
    let loaded = host.load(example_plugin("hello")).unwrap();
    assert!(matches!(loaded, warden::host::Loaded::Ready(_)));
    drop((loaded, host));
    assert_log_verifies(&log);

    // The hand count: decisions by outcome and rule.
    let mut by_outcome: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in log_records(&log) {
        if r["event"] == "deny" {
            let outcome = r["outcome"].as_str().unwrap().to_owned();
            let rule = r["rule"].as_str().unwrap().to_owned();
            *by_outcome
                .entry(outcome)
                .or_default()
                .entry(rule)
                .or_default() += 1;
        }
    }
    let out = warden_in(d, &["audit", "summary", "--json", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &s["plugins"];
    let reader = &p["file-reader"];
    assert_eq!(reader["denials"], serde_json::json!(by_outcome["denied"]));
    assert_eq!(
        reader["would_deny"],
        serde_json::json!(by_outcome["would_deny"])
    );
    assert_eq!(reader["runs"], serde_json::json!({"success": 2}));
    assert_eq!(p["hello"]["loads"], 1);
    assert_eq!(p["hello"]["runs"], serde_json::json!({}));
    assert_eq!(
        p["hello"]["loads_not_run"],
        serde_json::json!({"unloaded": 1})
    );
    assert_eq!(
        p["net-probe"]["limits"],
        serde_json::json!({"max_requests": 1})
    );

    let out = warden_in(d, &["audit", "summary", log.to_str().unwrap()]);
    let t = text(&out.stdout);
    assert!(
        t.contains("hello\n  loads               1 (1 ended without a run: unloaded 1)\n  runs                0\n"),
        "{t}"
    );
    assert!(t.contains("  limits hit          max_requests 1\n"), "{t}");
    let rules = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert!(
        t.contains(&format!(
            "  denied by rule      {}\n  would deny by rule  {}\n",
            rules(&by_outcome["denied"]),
            rules(&by_outcome["would_deny"])
        )),
        "{t}"
    );

    // `show`: the variables an env grant passed and withheld, where a directory is.
    let out = warden_in(
        d,
        &[
            "audit",
            "show",
            "--event",
            "grant",
            "--plugin",
            "file-reader",
            log.to_str().unwrap(),
        ],
    );
    let t = text(&out.stdout);
    let data = std::fs::canonicalize(d.join("data")).unwrap();
    assert!(
        t.contains(&format!(
            "granted fs_read ./data at {} as /data by ",
            data.display()
        )),
        "{t}"
    );
    assert!(
        t.contains("granted env APP_* by plugins.file-reader.env.allow[0]; passes APP_MODE; withholds APP_SECRET"),
        "{t}"
    );
}

// ---------------------------------------------------------------------------------
// Checkpoints.

fn keygen(dir: &Path) -> (String, String) {
    let out = warden_in(
        dir,
        &[
            "audit",
            "keygen",
            "--out",
            &dir.join("ops").display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    (
        dir.join("ops.key").display().to_string(),
        dir.join("ops.pub").display().to_string(),
    )
}

fn verify(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["audit", "verify"];
    all.extend_from_slice(args);
    let out = warden_in(dir, &all);
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn a_cut_tail_fails_expect_head_and_checkpoint() {
    let h = History::new();
    let d = h.dir.path();
    let (secret, public) = keygen(d);
    let log = h.arg("audit.jsonl");
    let cp = h.arg("kept-elsewhere.json");
    let out = warden_in(
        d,
        &["audit", "checkpoint", "--key", &secret, "--out", &cp, &log],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let hello = example_plugin("hello");
    h.run("p.toml", &hello, &["after"]);
    let (code, said) = verify(d, &["--key", &public, "--checkpoint", &cp, &log]);
    assert_eq!(code, Some(0), "{said}");
    let head = said.split("head ").nth(1).unwrap()[..64].to_owned();
    let before = std::fs::read_to_string(&log).unwrap();

    // Cut the last run (it ended: plain verify cannot tell).
    let lines: Vec<&str> = before.lines().collect();
    let keep = lines.len() - 4;
    std::fs::write(&log, lines[..keep].join("\n") + "\n").unwrap();
    let (code, said) = verify(d, &[&log]);
    assert_eq!(
        code,
        Some(0),
        "a cut at a run boundary verifies without a head: {said}"
    );
    let (code, said) = verify(d, &["--expect-head", &head, &log]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "the head {head} that was expected is not in the chain"
        )),
        "{said}"
    );

    // Cut the checkpoint itself: the checkpoint file finds it missing.
    let at = lines
        .iter()
        .position(|l| l.contains("\"event\":\"checkpoint\""))
        .unwrap();
    std::fs::write(&log, lines[..at].join("\n") + "\n").unwrap();
    let (code, said) = verify(d, &["--key", &public, "--checkpoint", &cp, &log]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "before the checkpoint at seq {at} that the checkpoint file"
        )),
        "{said}"
    );
}

/// Re-chains `lines` as a forger would: every `seq` and `prev` recomputed; when
/// `fix_checkpoints`, also each checkpoint's `head` and `records`.
fn rechain(lines: &[String], fix_checkpoints: bool) -> String {
    use sha2::Digest as _;
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for (seq, line) in lines.iter().enumerate() {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
        v.insert("seq".into(), seq.into());
        v.insert("prev".into(), prev.clone().into());
        if fix_checkpoints && v["event"] == "checkpoint" {
            v.insert("head".into(), prev.clone().into());
            v.insert("records".into(), seq.into());
        }
        let text = serde_json::to_string(&v).unwrap();
        prev = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        out.push_str(&text);
        out.push('\n');
    }
    out
}

#[test]
fn a_rechained_log_with_a_record_deleted_before_the_checkpoint_fails_verify_key() {
    let h = History::new();
    let d = h.dir.path();
    let (secret, public) = keygen(d);
    let log = h.arg("audit.jsonl");
    let out = warden_in(d, &["audit", "checkpoint", "--key", &secret, &log]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    h.run("p.toml", &example_plugin("hello"), &["after"]);
    let original: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // The runtime denial, deleted, and the chain rebuilt around the gap.
    let gone = original
        .iter()
        .position(|l| l.contains("\"runtime_deny\""))
        .unwrap();
    let mut edited = original.clone();
    edited.remove(gone);

    std::fs::write(&log, rechain(&edited, false)).unwrap();
    let (code, said) = verify(d, &[&log]);
    assert_eq!(
        code,
        Some(1),
        "the checkpoint's head no longer matches: {said}"
    );
    assert!(said.contains("checkpoint: it signed head"), "{said}");

    // A forger who also rewrites the checkpoint's head: only the key tells.
    std::fs::write(&log, rechain(&edited, true)).unwrap();
    let (code, said) = verify(d, &[&log]);
    assert_eq!(
        code,
        Some(0),
        "without the key a rebuilt chain looks whole: {said}"
    );
    let (code, said) = verify(d, &["--key", &public, &log]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("its signature does not hold"), "{said}");

    // The untouched log verifies with the key.
    std::fs::write(&log, original.join("\n") + "\n").unwrap();
    let (code, said) = verify(d, &["--key", &public, &log]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("1 checkpoint(s)"), "{said}");
}

fn clock(at: &Arc<AtomicU64>) -> warden::audit::Clock {
    let at = Arc::clone(at);
    Arc::new(move || {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.load(Ordering::SeqCst))
    })
}

fn one_run(log: &AuditLog) {
    let run = log.run().unwrap();
    run.run_end(&warden::audit::RunEnd::refused(77, "a test run"))
        .unwrap();
    drop(run);
    log.sync().unwrap();
}

#[test]
fn a_rotated_set_with_its_oldest_file_deleted_verifies_from_its_first_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = d.join("audit.jsonl");
    // 2026-11-30T12:00:00Z, then the next two days.
    let t0 = 1_764_504_000;
    let now = Arc::new(AtomicU64::new(t0));
    let log = AuditLog::open_with_clock(&base, Rotation::Daily, clock(&now)).unwrap();
    for day in 0..3 {
        now.store(t0 + day * 86_400, Ordering::SeqCst);
        for _ in 0..3 {
            one_run(&log);
        }
        if day == 1 {
            let (secret, _) = keygen(d);
            let out = warden_in(
                d,
                &[
                    "audit",
                    "checkpoint",
                    "--key",
                    &secret,
                    &base.display().to_string(),
                ],
            );
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        }
    }
    log.finish().unwrap();
    let files = warden::audit::read::log_set(&base).unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    let public = d.join("ops.pub").display().to_string();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut args: Vec<&str> = vec!["--key", &public];
    args.extend(names.iter().map(String::as_str));
    let (code, said) = verify(d, &args);
    assert_eq!(code, Some(0), "{said}");

    // Retention deletes the oldest file.
    std::fs::remove_file(&files[0]).unwrap();
    let rest: Vec<&str> = names[1..].iter().map(String::as_str).collect();
    let (code, said) = verify(d, &rest);
    assert_eq!(
        code,
        Some(1),
        "without the key the start cannot be trusted: {said}"
    );
    let mut with_key = vec!["--key", public.as_str()];
    with_key.extend(&rest);
    let (code, said) = verify(d, &with_key);
    assert_eq!(
        code,
        Some(1),
        "a missing start is accepted only when asked: {said}"
    );
    assert!(said.contains("--allow-missing-start"), "{said}");
    with_key.insert(0, "--allow-missing-start");
    let (code, said) = verify(d, &with_key);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "(from seq 3: the records before it are missing, as allowed; the signed checkpoint at seq 6 ({}:4) vouches for the start)",
            names[1]
        )),
        "{said}"
    );
}

#[test]
fn verify_hosts_reports_each_hosts_chain() {
    let dir = tempfile::tempdir().unwrap();
    for host in ["web-1", "web-2"] {
        let folder = dir.path().join(host);
        std::fs::create_dir(&folder).unwrap();
        let out = crate::cli::warden_command()
            .args(["run", "--audit-log"])
            .arg(folder.join("audit.jsonl"))
            .arg(example_plugin("hello"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
    }
    let (code, said) = verify(dir.path(), &["--hosts", &dir.path().display().to_string()]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("web-1: ok: 4 records") && said.contains("web-2: ok: 4 records"),
        "{said}"
    );
    // Tamper with one host: only that one fails.
    let log = dir.path().join("web-2/audit.jsonl");
    // The first record (an edit of the last one only a kept head would show).
    let edited = std::fs::read_to_string(&log).unwrap().replacen(
        "\"mode\":\"enforce\"",
        "\"mode\":\"audit\"",
        1,
    );
    std::fs::write(&log, edited).unwrap();
    let (code, said) = verify(dir.path(), &["--hosts", &dir.path().display().to_string()]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("web-1: ok"), "{said}");
    assert!(said.contains("web-2: break: "), "{said}");
}

#[test]
fn audit_commands_read_the_default_log_when_no_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("state/audit.jsonl");
    let run = crate::cli::warden_command()
        .env("WARDEN_AUDIT_LOG", &log)
        .arg("run")
        .arg(example_plugin("hello"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    for args in [
        vec!["audit", "verify"],
        vec!["audit", "show"],
        vec!["audit", "summary"],
    ] {
        let out = crate::cli::warden_command()
            .env("WARDEN_AUDIT_LOG", &log)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(if args[1] == "verify" {
                "ok: 4 records"
            } else {
                "hello"
            }),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}

/// `--audit-rotate size:…` with `--audit-keep`: files stay near the bound, at most
/// `keep` old ones remain, and with a checkpoint each round what is left verifies
/// with the key, from its first checkpoint, though four writers ran at once.
#[test]
fn size_rotation_keeps_its_bound_and_the_kept_set_verifies_from_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("audit.jsonl");
    let (secret, public) = keygen(d);
    for _round in 0..4 {
        let writers: Vec<_> = (0..4)
            .map(|_| {
                crate::cli::warden_command()
                    .env("WARDEN_AUDIT_LOG", &log)
                    .args(["run", "--audit-rotate", "size:8KiB", "--audit-keep", "2"])
                    .arg(example_plugin("hello"))
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut w in writers {
            assert!(w.wait().unwrap().success());
        }
        let out = crate::cli::warden_command()
            .env("WARDEN_AUDIT_LOG", &log)
            .args(["audit", "checkpoint", "--key", &secret])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let set = warden::audit::read::log_set(&log).unwrap();
    assert!(set.len() <= 3 && set.len() >= 2, "{set:?}");
    for f in &set {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 8 * 1024 + 2048, "{f:?} is {len} bytes");
    }
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&set[0])
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        first["seq"].as_u64().unwrap() > 0,
        "the oldest files were deleted"
    );
    let out = crate::cli::warden_command()
        .env("WARDEN_AUDIT_LOG", &log)
        .args(["audit", "verify", "--key", &public, "--allow-missing-start"])
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(
            "the records before it are missing, as allowed; the signed checkpoint at seq"
        ),
        "{said}"
    );
    let out = crate::cli::warden_command()
        .env("WARDEN_AUDIT_LOG", &log)
        .args(["audit", "verify", "--key", &public])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "with the key alone, a missing start is a break"
    );
    let out = crate::cli::warden_command()
        .env("WARDEN_AUDIT_LOG", &log)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "without the key the start is a break"
    );
}
