//! The administrator's loop: audit mode that is safe on an untrusted plugin and
//! records what it used, `policy suggest` from those runs to a policy enforce mode
//! accepts, `policy pin`, `policy check` warnings, per-variable env decisions, and
//! denials people can see.

use crate::common::*;
use crate::network::{Server, hello};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use warden::abi::{Capabilities, StdioCapability};
use warden::host::{Loaded, Warden};

const SECRET: &str = "ghp_s3cret-value";

/// A working directory with `data/notes.txt` and `out/`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("data/notes.txt"), "hello notes").unwrap();
        Site { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn policy(&self, name: &str, text: &str) -> PathBuf {
        crate::policy::policy_file(self.dir.path(), name, text)
    }

    /// `warden run` of an example plugin here, with `APP_MODE` and `APP_TOKEN` set.
    fn run(&self, policy: &Path, log: &Path, plugin: &str, args: &[&str]) -> Output {
        self.run_with(&[], policy, log, plugin, args)
    }

    /// [`Site::run`] with more flags for `run`.
    fn run_with(
        &self,
        flags: &[&str],
        policy: &Path,
        log: &Path,
        plugin: &str,
        args: &[&str],
    ) -> Output {
        crate::cli::warden_command()
            .env("APP_MODE", "fast")
            .env("APP_TOKEN", SECRET)
            .arg("run")
            .args(flags)
            .arg("--policy")
            .arg(policy)
            .arg("--audit-log")
            .arg(log)
            .arg("--workdir")
            .arg(self.dir.path())
            .arg(example_plugin(plugin))
            .args(args)
            .output()
            .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn events<'r>(records: &'r [serde_json::Value], event: &str) -> Vec<&'r serde_json::Value> {
    records.iter().filter(|r| r["event"] == event).collect()
}

const AUDIT_POLICY: &str = r#"version = 1
mode = "audit"

[defaults.fs]
deny = ["~/.ssh"]

[defaults.env]
deny = ["*_TOKEN", "AWS_*"]

# Audit mode keeps the built-in protections: a loopback address is reached only
# when named literally.
[plugins.fetcher]
net.allow = ["http://127.0.0.1:8000"]
"#;

// ---------------------------------------------------------------------------------
// Audit mode.

/// A plugin declaring `env *` whose call writes its whole environment to stdout.
fn env_dumper() -> Vec<u8> {
    let caps = Capabilities {
        env_read: vec!["*".into()],
        stdio: StdioCapability {
            stdout: true,
            ..StdioCapability::default()
        },
        ..Capabilities::default()
    };
    let mut plugin = WatPlugin::new("env-dumper");
    plugin.manifest = manifest_bytes_with("env-dumper", 2, caps);
    plugin.imports = r#"(import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#
        .into();
    plugin.execute_fn = Some(format!(
        "(drop (call $sizes (i32.const 600) (i32.const 604)))
         (drop (call $get (i32.const 70000) (i32.const 80000)))
         (i32.store (i32.const 620) (i32.const 80000))
         (i32.store (i32.const 624) (i32.load (i32.const 604)))
         (drop (call $fd_write (i32.const 1) (i32.const 620) (i32.const 1) (i32.const 640)))
         {}",
        WatPlugin::packed(RESULT_AT, plugin.result.len() as u32)
    ));
    plugin.bytes()
}

#[test]
fn audit_mode_never_passes_a_variable_a_deny_list_names() {
    let site = Site::new();
    let policy = site.policy("audit.toml", AUDIT_POLICY);
    std::fs::write(site.path("env-dumper.wasm"), env_dumper()).unwrap();
    let log = site.path("audit.jsonl");
    let warden = Warden::builder()
        .worker_program(env!("CARGO_BIN_EXE_warden"))
        .policy_file(&policy)
        .audit_log(&log)
        .workdir(site.dir.path())
        .env([
            ("HOME".to_string(), "/home/op".to_string()),
            ("APP_MODE".to_string(), "fast".to_string()),
            ("GITHUB_TOKEN".to_string(), SECRET.to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), SECRET.to_string()),
        ])
        .without_cache()
        .build()
        .unwrap();
    let Loaded::Ready(plugin) = warden.load(site.path("env-dumper.wasm")).unwrap() else {
        panic!("refused")
    };
    let report = plugin.run(&[]).unwrap();
    warden.flush().unwrap();
    let environ = text(&report.stdout);
    assert!(environ.contains("APP_MODE=fast"), "{environ:?}");
    assert!(environ.contains("HOME=/home/op"), "{environ:?}");
    assert!(
        !environ.contains(SECRET),
        "audit mode passed a denied variable"
    );
    assert!(!environ.contains("GITHUB_TOKEN") && !environ.contains("AWS_"));

    let records = log_records(&log);
    let star = records
        .iter()
        .find(|r| r["request"] == "*")
        .expect("a decision for `*`");
    assert_eq!(star["outcome"], "would_deny");
    assert_eq!(star["names"], serde_json::json!(["APP_MODE", "HOME"]));
    assert_eq!(
        star["withheld"],
        serde_json::json!([
            {"name": "AWS_SECRET_ACCESS_KEY", "rule": "defaults.env.deny[1]"},
            {"name": "GITHUB_TOKEN", "rule": "defaults.env.deny[0]"},
        ])
    );
    assert!(!std::fs::read_to_string(&log).unwrap().contains(SECRET));
    assert_log_verifies(&log);
}

/// A directory a deny list names is denied in audit mode too, and the plugin cannot
/// reach it; what enforce would deny for want of an allow entry is granted.
#[test]
fn audit_mode_keeps_fs_deny_lists() {
    let site = Site::new();
    let policy = site.policy("audit.toml", &AUDIT_POLICY.replace("~/.ssh", "./out"));
    let log = site.path("audit.jsonl");
    let out = site.run(&policy, &log, "file-writer", &["write", "x.txt", "data"]);
    assert_ne!(out.status.code(), Some(0), "wrote into a denied directory");
    assert!(!site.path("out/x.txt").exists());
    let records = log_records(&log);
    let out_decision = records
        .iter()
        .find(|r| r["request"] == "./out")
        .expect("a decision for ./out");
    assert_eq!(out_decision["event"], "deny");
    assert_eq!(out_decision["outcome"], "denied");
    assert_eq!(out_decision["rule"], "defaults.fs.deny[0]");
    let data = records.iter().find(|r| r["request"] == "./data").unwrap();
    assert_eq!(data["outcome"], "would_deny");
}

#[test]
fn access_records_name_what_the_plugin_opened_once_per_path() {
    let site = Site::new();
    let policy = site.policy("audit.toml", AUDIT_POLICY);
    let log = site.path("audit.jsonl");
    let out = site.run(&policy, &log, "file-reader", &["read", "notes.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = site.run(&policy, &log, "file-writer", &["write", "r.txt", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let records = log_records(&log);
    let accesses = events(&records, "access");
    let data = site.path("data").canonicalize().unwrap();
    let outdir = site.path("out").canonicalize().unwrap();
    let read = accesses
        .iter()
        .find(|a| a["path"] == "notes.txt")
        .expect("an access for notes.txt");
    assert_eq!(read["call"], "path_open");
    assert_eq!(read["preopen"], "/data");
    assert_eq!(
        read["host_path"],
        data.join("notes.txt").display().to_string()
    );
    assert_eq!(read["write"], false);
    let wrote = accesses
        .iter()
        .find(|a| a["path"] == "r.txt")
        .expect("an access for r.txt");
    assert_eq!(wrote["preopen"], "/out");
    assert_eq!(
        wrote["host_path"],
        outdir.join("r.txt").display().to_string()
    );
    assert_eq!(wrote["write"], true);
    // Once per path per run.
    let per_run: BTreeSet<(String, String)> = accesses
        .iter()
        .map(|a| (a["run_id"].to_string(), a["path"].to_string()))
        .collect();
    assert_eq!(per_run.len(), accesses.len());
    assert_log_verifies(&log);

    // Enforce mode records no use.
    let enforce = site.policy(
        "enforce.toml",
        "version = 1\n[plugins.file-reader]\nfs.read = [\"./data\"]\n",
    );
    let log2 = site.path("enforce.jsonl");
    site.run(&enforce, &log2, "file-reader", &["read", "notes.txt"]);
    assert!(events(&log_records(&log2), "access").is_empty());
}

// ---------------------------------------------------------------------------------
// policy suggest.

/// What each example plugin's runs are: together they use everything it declares.
const RUNS: &[(&str, &[&str])] = &[
    ("file-reader", &["read", "notes.txt"]),
    ("file-reader", &["env-all"]),
    ("file-reader", &["print", "hi"]),
    ("file-writer", &["write", "r.txt", "hi"]),
    ("file-writer", &["read", "/data/notes.txt"]),
    ("file-writer", &["print", "hi"]),
    ("hello", &["Grace"]),
    ("fetcher", &["get", "http://127.0.0.1:8000/x"]),
];

#[test]
fn suggest_turns_audit_runs_into_the_narrowest_policy_enforce_accepts() {
    // The fetcher declares `http://127.0.0.1` on any port: the server takes a free one.
    let server = Server::start(0, None, hello);
    let here = format!("127.0.0.1:{}", server.port());
    let site = Site::new();
    let audit = site.policy("audit.toml", &AUDIT_POLICY.replace("127.0.0.1:8000", &here));
    let log = site.path("audit.jsonl");
    let runs: Vec<(&str, Vec<String>)> = RUNS
        .iter()
        .map(|(plugin, args)| {
            let args = args.iter().map(|a| a.replace("127.0.0.1:8000", &here));
            (*plugin, args.collect())
        })
        .collect();
    let runs: Vec<(&str, Vec<&str>)> = runs
        .iter()
        .map(|(plugin, args)| (*plugin, args.iter().map(String::as_str).collect()))
        .collect();
    let mut audited = Vec::new();
    for (plugin, args) in &runs {
        let out = site.run(&audit, &log, plugin, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{plugin} {args:?}: {}",
            text(&out.stderr)
        );
        audited.push(text(&out.stdout));
    }

    let out = crate::cli::warden(&["policy", "suggest", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let suggested = text(&out.stdout);
    assert!(
        !suggested.contains("declared but used by no run"),
        "these runs use every declared item:\n{suggested}"
    );
    let suggested_path = site.policy("suggested.toml", &suggested);
    let check = crate::cli::warden(&["policy", "check", suggested_path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));

    // Enforce mode under the suggestion: the same runs, the same output, no denial.
    let log2 = site.path("enforce.jsonl");
    for ((plugin, args), before) in runs.iter().zip(&audited) {
        let out = site.run(&suggested_path, &log2, plugin, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{plugin} {args:?}: {}",
            text(&out.stderr)
        );
        if *plugin != "fetcher" {
            assert_eq!(&text(&out.stdout), before, "{plugin} {args:?}");
        }
        assert!(
            text(&out.stderr).is_empty(),
            "{plugin}: {}",
            text(&out.stderr)
        );
    }
    let records = log_records(&log2);
    assert!(
        events(&records, "deny").is_empty(),
        "{:#?}",
        events(&records, "deny")
    );
    assert!(events(&records, "runtime_deny").is_empty());
    assert!(!std::fs::read_to_string(&log2).unwrap().contains(SECRET));
    assert_eq!(server.seen().len(), 2);

    // Nothing granted that no run used.
    let table: toml::Table = suggested.parse().unwrap();
    let audit_records = log_records(&log);
    let used_paths: Vec<String> = events(&audit_records, "access")
        .iter()
        .filter_map(|a| a["host_path"].as_str().map(str::to_owned))
        .collect();
    let used_calls: BTreeSet<String> = events(&audit_records, "access")
        .iter()
        .filter_map(|a| a["call"].as_str().map(str::to_owned))
        .collect();
    let plugins = table["plugins"].as_table().unwrap();
    assert_eq!(
        plugins.keys().cloned().collect::<BTreeSet<_>>(),
        ["fetcher", "file-reader", "file-writer", "hello"]
            .map(String::from)
            .into()
    );
    for (name, t) in plugins {
        let t = t.as_table().unwrap();
        assert!(t["sha256"].is_str(), "{name} is pinned");
        let strings = |v: Option<&toml::Value>| -> Vec<String> {
            v.and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let fs = t.get("fs").and_then(|f| f.as_table());
        for dir in strings(fs.and_then(|f| f.get("read")))
            .into_iter()
            .chain(strings(fs.and_then(|f| f.get("write"))))
        {
            assert!(
                used_paths.iter().any(|p| p.starts_with(&format!("{dir}/"))),
                "{name}: `{dir}` granted but nothing under it was opened"
            );
        }
        for stream in strings(t.get("stdio")) {
            assert!(
                used_calls.contains(&stream),
                "{name}: `{stream}` granted, never used"
            );
        }
    }
    let reader = plugins["file-reader"].as_table().unwrap();
    assert_eq!(
        reader["env"]["deny"].as_array().unwrap(),
        &[toml::Value::from("*_TOKEN"), toml::Value::from("AWS_*")],
        "the audit policy's deny patterns are kept (they withheld APP_TOKEN)"
    );
    assert_eq!(
        plugins["fetcher"]["net"]["allow"].as_array().unwrap().len(),
        1,
        "only the endpoint that was used"
    );

    // `--plugin` and `--json` select and explain.
    let out = crate::cli::warden(&[
        "policy",
        "suggest",
        "--plugin",
        "fetcher",
        "--json",
        log.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plugins"].as_array().unwrap().len(), 1);
    let fetcher = &v["plugins"][0];
    assert_eq!(fetcher["name"], "fetcher");
    assert!(
        fetcher["net_allow"][format!("http://{here}")]["uses"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{here}/x"))
    );
}

/// Audit mode never reaches a loopback address no allow entry names, so a plugin
/// that talks to loopback leaves refused requests, not uses: `suggest` shows each as
/// a commented allow entry with the reason (not as a declaration no run used), and
/// that entry, uncommented, lets the request through in enforce mode.
#[test]
fn suggest_shows_a_refused_loopback_attempt_as_a_commented_entry() {
    let server = Server::start(0, None, hello);
    let here = format!("127.0.0.1:{}", server.port());
    let site = Site::new();
    let audit = site.policy(
        "audit.toml",
        "version = 1\nmode = \"audit\"\n[defaults.fs]\ndeny = [\"~/.ssh\"]\n",
    );
    let log = site.path("audit.jsonl");
    let url = format!("http://{here}/x");
    for _ in 0..2 {
        let out = site.run(&audit, &log, "fetcher", &["get", &url]);
        assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    }
    assert!(server.seen().is_empty(), "audit mode reached loopback");

    let out = crate::cli::warden(&["policy", "suggest", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let suggested = text(&out.stdout);
    let line = format!(
        "    # \"http://{here}\",  # tried {url} in 2 of 2 runs: 127.0.0.1 is a loopback (127.0.0.0/8) address; allow it only if you mean to"
    );
    assert!(suggested.contains(&line), "{suggested}");
    assert!(
        !suggested.contains("#   net http://127.0.0.1:*"),
        "a declaration the runs tried is not one no run used:\n{suggested}"
    );
    let table: toml::Table = suggested.parse().unwrap();
    assert!(
        table["plugins"]["fetcher"]["net"]["allow"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a refused request is never granted: {suggested}"
    );
    let json = crate::cli::warden(&["policy", "suggest", "--json", log.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let refused = &v["plugins"][0]["refused"][format!("http://{here} builtin.net.non_global")];
    assert_eq!(
        refused["allow"],
        serde_json::json!([format!("http://{here}")])
    );
    assert_eq!(refused["declared"], "http://127.0.0.1:*");

    // The administrator means it: uncommented, the entry lets the request through.
    let adopted = site.policy(
        "adopted.toml",
        &suggested.replace(&line, &line.replacen("# ", "", 1)),
    );
    let out = site.run(
        &adopted,
        &site.path("enforce.jsonl"),
        "fetcher",
        &["get", &url],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.seen().len(), 1);
}

/// After adopting a suggested table, enforce runs report no denial the policy
/// names: what no run used is denied by name (here `./data`, in `fs.deny`), which
/// the administrator meant. A denial no rule names is still reported.
#[test]
fn an_adopted_suggestion_reports_only_denials_the_policy_does_not_name() {
    let site = Site::new();
    let audit = site.policy("audit.toml", AUDIT_POLICY);
    let log = site.path("audit.jsonl");
    let out = site.run(&audit, &log, "file-reader", &["print", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = crate::cli::warden(&["policy", "suggest", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let suggested = text(&out.stdout);
    let data = site
        .path("data")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    let table: toml::Table = suggested.parse().unwrap();
    let reader = &table["plugins"]["file-reader"];
    assert!(
        reader["fs"]["deny"]
            .as_array()
            .unwrap()
            .contains(&toml::Value::from(data.as_str())),
        "{suggested}"
    );
    assert!(
        suggested.contains("#   fs_read ./data (denied by name above)"),
        "{suggested}"
    );
    let adopted = site.policy("adopted.toml", &suggested);
    let check = crate::cli::warden(&["policy", "check", adopted.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));

    let enforce = site.path("enforce.jsonl");
    let out = site.run(&adopted, &enforce, "file-reader", &["print", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    let denied = events(&log_records(&enforce), "deny")
        .into_iter()
        .map(|d| d["request"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(denied, ["./data"], "denied all the same");
    let out = site.run_with(&["-v"], &adopted, &enforce, "file-reader", &["print", "hi"]);
    let said = text(&out.stderr);
    assert!(
        said.contains("1 of 4 declared items denied by name in the policy")
            && said.contains("warden:   denied fs_read ./data by `plugins.file-reader.fs.deny["),
        "{said}"
    );

    // Without the denial by name, the same denial is reported.
    let unnamed: String = suggested
        .lines()
        .filter(|l| !l.contains("used by no run: denied by name"))
        .map(|l| format!("{l}\n"))
        .collect();
    let unnamed = site.policy("unnamed.toml", &unnamed);
    let out = site.run(&unnamed, &enforce, "file-reader", &["print", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run_id = log_records(&enforce).last().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        text(&out.stderr).lines().last(),
        Some(
            format!("warden: 1 of 4 declared items denied; see run {run_id} (-v lists them)")
                .as_str()
        )
    );
}

/// Defect 1: `suggest` allows a destination only when a request to it passed its
/// address check. A hand-built audit log holds a request to the metadata address
/// that failed at the call's deadline before its address check (`checked` lacks
/// `address`), one to loopback that failed in a log from before `checked` existed,
/// one that failed after its address check (the server refused the connection) and
/// one performed in an old log: only the last two are allowed, with the port used
/// where the declaration named none.
#[test]
fn suggest_allows_only_destinations_whose_address_check_passed() {
    use sha2::Digest as _;
    let site = Site::new();
    let audit = site.policy("audit.toml", AUDIT_POLICY);
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&audit).unwrap()));
    let policy = serde_json::json!({
        "path": std::fs::canonicalize(&audit).unwrap(),
        "sha256": sha,
        "mode": "audit",
    });
    let plugin = serde_json::json!({"name": "prober", "sha256": "ab".repeat(32)});
    let common = |event: &str, ts: &str| {
        serde_json::json!({
            "run_id": "r1", "ts": ts, "event": event, "plugin": plugin, "policy": policy,
        })
    };
    let with = |mut base: serde_json::Value, fields: serde_json::Value| {
        for (k, v) in fields.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    };
    let ts = "2026-12-01T08:00:00.000Z";
    let grant = |request: &str| {
        with(
            common("grant", ts),
            serde_json::json!({"capability": "net", "request": request, "rule": "none",
                "reason": "r", "outcome": "would_deny"}),
        )
    };
    let effect = |fields: serde_json::Value| {
        with(
            common("effect", ts),
            with(
                serde_json::json!({"kind": "http_get", "bytes_out": 0, "bytes_in": 0,
                    "duration_ms": 1.0, "rule": "none"}),
                fields,
            ),
        )
    };
    let records = [
        common("policy_loaded", ts),
        grant("http://169.254.169.254:*"),
        grant("http://127.0.0.1:*"),
        grant("https://api.example.com:443"),
        common("run_start", ts),
        effect(
            serde_json::json!({"url": "http://169.254.169.254:80/latest/meta-data/",
            "outcome": "failed", "limit": "timeout", "checked": ["url"],
            "reason": "the call's wall-clock limit (`timeout`) ran out during the effect"}),
        ),
        effect(serde_json::json!({"url": "http://127.0.0.1:9000/admin",
            "outcome": "failed", "reason": "cannot resolve"})),
        effect(serde_json::json!({"url": "https://api.example.com:443/v1",
            "outcome": "failed", "checked": ["url", "address"],
            "address": "93.184.216.34:443", "reason": "connection refused"})),
        effect(
            serde_json::json!({"url": "http://127.0.0.1:8080/ok", "outcome": "performed",
            "address": "127.0.0.1:8080", "status": 200}),
        ),
        with(
            common("run_end", ts),
            serde_json::json!({"outcome": "success", "exit_code": 0}),
        ),
    ];
    let log = site.path("hand-built.jsonl");
    let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&log, lines).unwrap();

    let out = crate::cli::warden(&["policy", "suggest", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let suggested = text(&out.stdout);
    let table: toml::Table = suggested.parse().unwrap();
    let allowed: Vec<&str> = table["plugins"]["prober"]["net"]["allow"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        allowed,
        ["http://127.0.0.1:8080", "https://api.example.com:443"],
        "{suggested}"
    );
    // The declarations no checked request used are left out, named in a comment.
    assert!(
        suggested.contains("#   net http://169.254.169.254:*"),
        "{suggested}"
    );
}

/// Defect 9, in the README's administrator loop: audit runs under a policy whose
/// deny patterns are `*_TOKEN` and `*SECRET*`, `suggest`, adopt the suggestion as
/// the enforce policy, and later a new `APP_SECRET_KEY` appears: the suggested table
/// keeps the audit policy's deny lists, so it is withheld, as the audit runs would
/// have withheld it. `suggest` refuses to drop them when the audit policy changed
/// since the runs (and `--policy` names the one to keep).
#[test]
fn a_suggested_table_keeps_the_deny_patterns_of_the_audit_policy() {
    const README_AUDIT: &str = "version = 1\nmode = \"audit\"\n\n[defaults.fs]\ndeny = [\"~/.ssh\", \"~/.aws\", \"/etc\"]\n\n[defaults.env]\ndeny = [\"*_TOKEN\", \"*SECRET*\"]\n";
    const LATER: &str = "k3y-appeared-later";
    let site = Site::new();
    let audit = site.policy("audit.toml", README_AUDIT);
    let log = site.path("audit.jsonl");
    for args in [&["read", "notes.txt"][..], &["env-all"], &["print", "hi"]] {
        let out = site.run(&audit, &log, "file-reader", args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = crate::cli::warden(&["policy", "suggest", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let suggested = text(&out.stdout);
    let adopted = site.policy("file-reader.toml", &suggested);
    let check = crate::cli::warden(&["policy", "check", adopted.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    let table: toml::Table = suggested.parse().unwrap();
    let reader = &table["plugins"]["file-reader"];
    let list = |kind: &str| -> Vec<String> {
        reader[kind]["deny"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("env"), ["*SECRET*", "*_TOKEN"], "{suggested}");
    assert_eq!(list("fs"), ["/etc", "~/.aws", "~/.ssh"], "{suggested}");

    // Enforce mode under the adopted table, with a secret that appeared later.
    let enforce_log = site.path("enforce.jsonl");
    let out = crate::cli::warden_command()
        .env("APP_MODE", "fast")
        .env("APP_TOKEN", SECRET)
        .env("APP_SECRET_KEY", LATER)
        .arg("run")
        .arg("--policy")
        .arg(&adopted)
        .arg("--audit-log")
        .arg(&enforce_log)
        .arg("--workdir")
        .arg(site.dir.path())
        .arg(example_plugin("file-reader"))
        .arg("env-all")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let environ = text(&out.stdout);
    assert!(environ.contains("APP_MODE=fast"), "{environ}");
    assert!(!environ.contains("APP_SECRET_KEY"), "{environ}");
    assert!(
        !environ.contains(LATER) && !environ.contains(SECRET),
        "{environ}"
    );
    let records = log_records(&enforce_log);
    let app = events(&records, "grant")
        .into_iter()
        .find(|g| g["request"] == "APP_*")
        .expect("APP_* is granted");
    let withheld: Vec<&str> = app["withheld"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert!(withheld.contains(&"APP_SECRET_KEY"), "{app}");
    assert!(
        !std::fs::read_to_string(&enforce_log)
            .unwrap()
            .contains(LATER)
    );

    // The audit policy changed since the runs: no table that forgets its deny lists.
    std::fs::write(&audit, README_AUDIT.replace("\"*SECRET*\"", "\"*KEY*\"")).unwrap();
    let out = crate::cli::warden(&["policy", "suggest", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66), "{}", text(&out.stdout));
    let said = text(&out.stderr);
    assert!(
        said.contains("has changed since") && said.contains("--policy FILE"),
        "{said}"
    );
    assert!(out.stdout.is_empty());
    let original = site.policy("original.toml", README_AUDIT);
    let out = crate::cli::warden(&[
        "policy",
        "suggest",
        "--policy",
        original.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let real = |p: &Path| std::fs::canonicalize(p).unwrap().display().to_string();
    assert_eq!(
        text(&out.stdout),
        suggested.replace(&real(&audit), &real(&original))
    );
}

// ---------------------------------------------------------------------------------
// policy pin.

#[test]
fn policy_pin_changes_one_line_and_keeps_every_comment() {
    let site = Site::new();
    let original = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples.toml"),
    )
    .unwrap();
    let policy = site.policy("examples.toml", &original);
    let reader = example_plugin("file-reader");
    let out = crate::cli::warden(&[
        "policy",
        "pin",
        "--policy",
        policy.to_str().unwrap(),
        reader.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let digest = hex::encode(sha256_of(&reader));
    let pinned = std::fs::read_to_string(&policy).unwrap();
    let added: Vec<&str> = pinned
        .lines()
        .filter(|l| !original.lines().any(|o| o == *l))
        .collect();
    assert_eq!(added, [format!("sha256 = \"{digest}\"")]);
    let without: String = pinned
        .lines()
        .filter(|l| !l.starts_with("sha256 = "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without, original, "every other byte is kept");

    // A rolling update: the old digest stays next to the new one.
    let old = "1".repeat(64);
    let stale = pinned.replace(&digest, &old);
    std::fs::write(&policy, &stale).unwrap();
    let out = crate::cli::warden(&[
        "policy",
        "pin",
        "--rolling",
        "--policy",
        policy.to_str().unwrap(),
        reader.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rolled = std::fs::read_to_string(&policy).unwrap();
    assert_eq!(
        rolled,
        stale.replace(
            &format!("sha256 = \"{old}\""),
            &format!("sha256 = [\"{old}\", \"{digest}\"]")
        )
    );
    // The list pins both: the current module runs.
    let out = site.run(
        &policy,
        &site.path("log.jsonl"),
        "file-reader",
        &["print", "x"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Two different modules that declare the same plugin name: without `--rolling`,
/// `pin` refuses (naming both files and the plugin) and writes nothing, instead of
/// pinning the first and then silently replacing it with the second; with
/// `--rolling` both digests are pinned, and two copies of one module are no conflict.
#[test]
fn pin_refuses_two_modules_of_one_name_unless_rolling() {
    let site = Site::new();
    let original = "version = 1\n# the twins\n[plugins.twin]\n";
    let policy = site.policy("p.toml", original);
    let one = site.path("one.wasm");
    let two = site.path("two.wasm");
    std::fs::write(&one, WatPlugin::new("twin").bytes()).unwrap();
    let mut other = WatPlugin::new("twin");
    other.result = result_bytes(&warden::abi::ExecuteResult::Success("other".into()));
    std::fs::write(&two, other.bytes()).unwrap();
    let (d1, d2) = (hex::encode(sha256_of(&one)), hex::encode(sha256_of(&two)));
    assert_ne!(d1, d2);
    let pin = |extra: &[&str], files: &[&Path]| {
        crate::cli::warden_command()
            .args(["policy", "pin", "--policy"])
            .arg(&policy)
            .args(extra)
            .args(files)
            .output()
            .unwrap()
    };

    let out = pin(&[], &[&one, &two]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let said = text(&out.stderr);
    for part in [
        one.display().to_string(),
        two.display().to_string(),
        "the plugin `twin`".into(),
        "--rolling".into(),
    ] {
        assert!(said.contains(&part), "{part}: {said}");
    }
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), original);

    // The same module twice is no conflict.
    let out = pin(&[], &[&one, &one]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(&policy, original).unwrap();

    let out = pin(&["--rolling"], &[&one, &two]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&policy).unwrap(),
        format!("{original}sha256 = [\"{d1}\", \"{d2}\"]\n")
    );
}

fn sha256_of(path: &Path) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).into()
}

#[test]
fn a_list_of_pins_refuses_a_module_it_does_not_name_and_on_denied_is_per_plugin() {
    let site = Site::new();
    let log = site.path("log.jsonl");
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let policy = site.policy(
        "p.toml",
        &format!("version = 1\n[plugins.file-reader]\nsha256 = [\"{a}\", \"{b}\"]\n"),
    );
    let out = site.run(&policy, &log, "file-reader", &["print", "x"]);
    assert_eq!(out.status.code(), Some(77));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{a} or {b}")), "{stderr}");
    let refused_run = log_records(&log)
        .into_iter()
        .rev()
        .find(|r| r["event"] == "run_end")
        .unwrap();
    assert!(
        stderr.contains(&format!(
            "; see run {}",
            refused_run["run_id"].as_str().unwrap()
        )),
        "{stderr}"
    );
    // `policy explain` gives the verdict `run` would: exit 77.
    let explain = crate::cli::warden_command()
        .args(["policy", "explain", "--policy"])
        .arg(&policy)
        .arg(example_plugin("file-reader"))
        .output()
        .unwrap();
    assert_eq!(explain.status.code(), Some(77));
    assert!(
        text(&explain.stdout).contains("verdict  refused (exit 77): "),
        "{}",
        text(&explain.stdout)
    );

    let policy = site.policy(
        "q.toml",
        "version = 1\n[defaults]\non_denied = \"run\"\n[plugins.file-reader]\non_denied = \"refuse\"\n",
    );
    let out = site.run(&policy, &log, "file-reader", &["print", "x"]);
    assert_eq!(out.status.code(), Some(77));
    assert!(
        text(&out.stderr).contains("`plugins.file-reader.on_denied` is `refuse`"),
        "{}",
        text(&out.stderr)
    );
    // Another plugin keeps the default.
    let out = site.run(&policy, &log, "hello", &[]);
    assert_eq!(out.status.code(), Some(0));
}

// ---------------------------------------------------------------------------------
// policy check warnings.

#[test]
fn each_warning_names_its_line_and_column_and_a_fix() {
    let site = Site::new();
    std::fs::create_dir(site.path("reports")).unwrap();
    for (body, at, says) in [
        ("[defaults]\nmemory = \"64 MB\"", "3:10", "write `64 MiB`"),
        (
            "[defaults.fs]\ndeny = [\"/etc\"]\n[plugins.x]\nfs.read = [\"./reprots\"]",
            "5:12",
            "did you mean `./reports`",
        ),
        (
            "[defaults.fs]\ndeny = [\"/etc\"]\n[plugins.x]\nfs.write = [\"/\"]",
            "5:13",
            "grants the whole filesystem",
        ),
        (
            "[defaults.fs]\ndeny = [\"/etc\"]\n[plugins.x]\nfs.read = [\"~\"]",
            "5:12",
            "the whole home directory",
        ),
        (
            "[plugins.x]\nenv.allow = [\"HOME\"]",
            "3:14",
            "no `env.deny` list applies",
        ),
        (
            "[defaults.env]\ndeny = [\"*_TOKEN\"]\n[plugins.x]\nenv.allow = [\"*\"]",
            "5:14",
            "allows every variable",
        ),
        (
            "[defaults.net]\ndeny = [\"10.0.0.0/8\"]\n[plugins.x]\nnet.allow = [\"http://0.0.0.0/0:*\"]",
            "5:14",
            "reaches every address",
        ),
        (
            "[plugins.x]\nnet.tls_roots = [\"./ca.pem\"]",
            "3:18",
            "is not a file here",
        ),
    ] {
        let path = site.policy("w.toml", &format!("version = 1\n{body}\n"));
        let out = crate::cli::warden_command()
            .current_dir(site.dir.path())
            .args(["policy", "check", "--workdir"])
            .arg(site.dir.path())
            .arg(&path)
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "warnings do not fail: {stdout}");
        let line = stdout
            .lines()
            .find(|l| l.contains(says))
            .unwrap_or_else(|| panic!("no warning saying {says}:\n{stdout}"));
        assert!(line.contains(&format!("w.toml:{at}: warning: ")), "{line}");
        assert!(stdout.contains("ok, with "), "{stdout}");
        let strict = crate::cli::warden_command()
            .args(["policy", "check", "--deny-warnings", "--workdir"])
            .arg(site.dir.path())
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            strict.status.code(),
            Some(1),
            "--deny-warnings fails: {body}"
        );
    }
    // A clean policy has none.
    let clean = site.policy(
        "clean.toml",
        "version = 1\n[defaults.fs]\ndeny = [\"/etc\"]\n[plugins.x]\nfs.read = [\"./reports\"]\n",
    );
    let out = crate::cli::warden_command()
        .args(["policy", "check", "--deny-warnings", "--workdir"])
        .arg(site.dir.path())
        .arg(&clean)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

// ---------------------------------------------------------------------------------
// Denials people can see.

#[test]
fn a_run_that_was_denied_something_says_so_and_names_the_run() {
    let site = Site::new();
    let log = site.path("log.jsonl");
    // APP_* and stdout are not allowed; fs.read is.
    let policy = site.policy(
        "p.toml",
        "version = 1\n[plugins.file-reader]\nfs.read = [\"./data\"]\nenv.allow = [\"HOME\"]\n",
    );
    let out = site.run(&policy, &log, "file-reader", &["read", "../out/x"]);
    let stderr = text(&out.stderr);
    let records = log_records(&log);
    let run_id = records[0]["run_id"].as_str().unwrap();
    let last = stderr.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "warden: 2 of 4 declared items denied, 1 call refused; see run {run_id} (-v lists them)"
        )
    );
    let out = site.run_with(&["-v"], &policy, &log, "file-reader", &["read", "../out/x"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warden:   denied env APP_* by `none`: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("warden:   denied stdio stdout by `none`: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("warden:   refused path_open `../out/x`"),
        "{stderr}"
    );

    let out = site.run_with(
        &["--json"],
        &policy,
        &log,
        "file-reader",
        &["read", "../out/x"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runtime_denials"][0]["path"], "../out/x");
    assert_eq!(v["effects"], serde_json::json!([]));
    assert!(v["run_id"].as_str().is_some_and(|id| id.len() == 32));

    // A run with nothing denied prints nothing of the kind.
    let all = site.policy("all.toml", "version = 1\n[plugins.hello]\n");
    let out = site.run(&all, &log, "hello", &[]);
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}
