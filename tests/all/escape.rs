//! Escape attempts with the real example plugins (and, for declared paths the examples
//! cannot express, a small WAT probe that reads one file through its first preopen).
//!
//! Each test lays out a directory tree in a temporary directory with a secret outside
//! what the plugin is granted, runs the attempts, and asserts that the secret's content
//! never appears in anything the plugin returns or prints, and that the decision names
//! the rule that decided it. A positive control in each test shows the plugin does
//! read what it was granted, so a test cannot pass merely because nothing works.
//!
//! Some cases are refused by wasmtime-wasi itself at run time (`..`, symlinks out of a
//! preopen, trailing slashes, writes in a read-only preopen); the pinned wasmtime-wasi
//! 48.0.8 carries the fixes of RUSTSEC-2026-0149 (`O_TRUNC` in a read-only preopen) and
//! RUSTSEC-2026-0188 (rename and hard link into one).

use crate::cli::warden;
use crate::common::*;
use crate::policy::policy_file;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use warden::abi::{Capabilities, ExecuteResult, PathPattern, StdioCapability};
use warden::grant::{Decision, Decisions, Host, Outcome, decide};
use warden::policy::Policy;
use warden::sandbox::Sandbox;

const SECRET: &str = "TOPSECRET-7c1e9b";
const FINE: &str = "fine-content";

/// root/work/{data/ok.txt, out/}, root/work/secret, root/vault/hidden.txt and
/// root/home/.ssh/id_rsa; the secrets all contain [`SECRET`].
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["work/data", "work/out", "vault", "home/.ssh"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("work/data/ok.txt"), FINE).unwrap();
        for f in ["work/secret", "vault/hidden.txt", "home/.ssh/id_rsa"] {
            std::fs::write(root.join(f), format!("{SECRET} in {f}")).unwrap();
        }
        Tree { _dir: dir, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn host(&self) -> Host {
        Host {
            workdir: self.path("work"),
            home: Some(self.path("home")),
            env: vec![("HOME".into(), self.path("home").display().to_string())],
            audit_log: None,
        }
    }
}

/// Everything observable about one call: the result, stdout and stderr.
fn observe(instance: &warden::PluginInstance, args: &[&str]) -> (Option<ExecuteResult>, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let report = instance.run(&args);
    let text = format!(
        "{:?}\n{}\n{}",
        report.result,
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr)
    );
    (report.result.ok(), text)
}

/// Loads `bytes`, decides under `policy` on `host`, builds the sandbox from the
/// decisions, and runs each attempt.
fn attempts(
    bytes: &[u8],
    policy: &str,
    host: &Host,
    tries: &[&[&str]],
) -> (Decisions, Vec<(Option<ExecuteResult>, String)>) {
    let policy = Policy::parse("escape.toml", policy).unwrap_or_else(|e| panic!("{e}"));
    let loader = loader();
    let mut loaded = loader.load(bytes).unwrap();
    let decisions = decide(
        &loaded.manifest.capabilities,
        &loaded.manifest.command.name,
        loaded.instance.sha256(),
        &policy,
        host,
    );
    loaded
        .instance
        .set_sandbox(Sandbox::from_decisions(&decisions));
    let outputs = tries.iter().map(|t| observe(&loaded.instance, t)).collect();
    (decisions, outputs)
}

fn item<'d>(decisions: &'d Decisions, request: &str) -> &'d Decision {
    decisions
        .items()
        .iter()
        .find(|d| d.request() == request)
        .unwrap_or_else(|| panic!("no decision for `{request}`: {decisions:#?}"))
}

fn assert_decided(decisions: &Decisions, request: &str, outcome: Outcome, rule: &str) {
    let d = item(decisions, request);
    assert_eq!(d.outcome(), outcome, "{d:#?}");
    assert_eq!(d.rule(), rule, "{d:#?}");
    assert!(!d.reason().is_empty());
}

/// Asserts no attempt's output holds the secret and every attempt failed (a user
/// error from the plugin, not a success).
fn assert_all_refused(outputs: &[(Option<ExecuteResult>, String)], tries: &[&[&str]]) {
    for ((result, text), t) in outputs.iter().zip(tries) {
        assert!(!text.contains(SECRET), "{t:?} leaked the secret:\n{text}");
        assert!(
            matches!(result, Some(ExecuteResult::Error(e)) if e.code == 1),
            "{t:?} was not refused:\n{text}"
        );
    }
}

fn success(output: &(Option<ExecuteResult>, String)) -> &str {
    match &output.0 {
        Some(ExecuteResult::Success(s)) => s,
        _ => panic!("expected success:\n{}", output.1),
    }
}

const READER_POLICY: &str = r#"
version = 1
[defaults]
fs.deny = ["~/.ssh"]
[plugins.file-reader]
fs.read = ["./data"]
stdio = ["stdout"]
"#;

#[test]
fn dotdot_out_of_a_granted_directory_is_refused() {
    let t = Tree::new();
    std::fs::create_dir(t.path("work/data/sub")).unwrap();
    let tries: &[&[&str]] = &[
        &["read", "../secret"],
        &["read", "/data/../secret"],
        &["read", "sub/../../secret"],
        &["read", "./../../vault/hidden.txt"],
        &["list", ".."],
        &["list", "../.."],
    ];
    let mut all = tries.to_vec();
    all.push(&["read", "ok.txt"]);
    let (d, out) = attempts(
        &example_bytes("file-reader"),
        READER_POLICY,
        &t.host(),
        &all,
    );
    assert_decided(
        &d,
        "./data",
        Outcome::Granted,
        "plugins.file-reader.fs.read[0]",
    );
    assert_all_refused(&out[..tries.len()], tries);
    assert_eq!(success(&out[tries.len()]), FINE);
}

#[test]
fn an_absolute_path_outside_is_refused() {
    let t = Tree::new();
    let secret = t.path("work/secret").display().to_string();
    let hidden = t.path("vault/hidden.txt").display().to_string();
    let tries: &[&[&str]] = &[
        &["read", &secret],
        &["read", &hidden],
        &["read", "/secret"],
        &["read", "/work/secret"],
    ];
    let (d, out) = attempts(
        &example_bytes("file-reader"),
        READER_POLICY,
        &t.host(),
        tries,
    );
    assert_decided(
        &d,
        "./data",
        Outcome::Granted,
        "plugins.file-reader.fs.read[0]",
    );
    assert_all_refused(&out, tries);
}

#[test]
fn a_symlink_inside_a_grant_pointing_out_is_refused() {
    let t = Tree::new();
    symlink("../secret", t.path("work/data/rel")).unwrap();
    symlink(t.path("work/secret"), t.path("work/data/abs")).unwrap();
    symlink(t.path("vault"), t.path("work/data/dir")).unwrap();
    let tries: &[&[&str]] = &[
        &["read", "rel"],
        &["read", "abs"],
        &["read", "dir/hidden.txt"],
        &["list", "dir"],
    ];
    let mut all = tries.to_vec();
    all.push(&["read", "ok.txt"]);
    let (d, out) = attempts(
        &example_bytes("file-reader"),
        READER_POLICY,
        &t.host(),
        &all,
    );
    assert_decided(
        &d,
        "./data",
        Outcome::Granted,
        "plugins.file-reader.fs.read[0]",
    );
    assert_all_refused(&out[..tries.len()], tries);
    assert!(!out[3].1.contains("hidden.txt"), "{}", out[3].1);
    assert_eq!(success(&out[tries.len()]), FINE);
}

#[test]
fn a_declared_path_that_is_a_symlink_to_a_denied_place_is_denied() {
    let t = Tree::new();
    std::fs::rename(t.path("work/data"), t.path("work/real-data")).unwrap();
    symlink("../vault", t.path("work/data")).unwrap();
    let policy = r#"
version = 1
[defaults]
fs.deny = ["../vault"]
[plugins.file-reader]
fs.read = ["./data"]
stdio = ["stdout"]
"#;
    let tries: &[&[&str]] = &[&["read", "hidden.txt"], &["list", "."]];
    let (d, out) = attempts(&example_bytes("file-reader"), policy, &t.host(), tries);
    assert_decided(&d, "./data", Outcome::Denied, "defaults.fs.deny[0]");
    let reason = item(&d, "./data").reason();
    assert!(
        reason.contains(&t.path("vault").display().to_string()),
        "{reason}"
    );
    assert_eq!(
        item(&d, "./data").host_path(),
        Some(t.path("vault").to_str().unwrap())
    );
    assert_all_refused(&out, tries);
    assert!(!out[1].1.contains("hidden.txt"));
}

#[test]
fn a_directory_replaced_by_a_symlink_after_the_decision_changes_nothing() {
    let t = Tree::new();
    let policy = Policy::parse("escape.toml", READER_POLICY).unwrap();
    let loader = loader();
    let mut loaded = loader.load(&example_bytes("file-reader")).unwrap();
    let decisions = decide(
        &loaded.manifest.capabilities,
        "file-reader",
        loaded.instance.sha256(),
        &policy,
        &t.host(),
    );
    assert_decided(
        &decisions,
        "./data",
        Outcome::Granted,
        "plugins.file-reader.fs.read[0]",
    );

    // Between the decision and the sandbox: the granted directory becomes a symlink.
    // The decision holds the directory it checked, so the sandbox is built from it.
    std::fs::rename(t.path("work/data"), t.path("work/data.old")).unwrap();
    symlink("../vault", t.path("work/data")).unwrap();
    loaded
        .instance
        .set_sandbox(Sandbox::from_decisions(&decisions));
    let (_, text) = observe(&loaded.instance, &["read", "hidden.txt"]);
    assert!(!text.contains(SECRET), "{text}");
    let out = observe(&loaded.instance, &["read", "ok.txt"]);
    assert_eq!(success(&out), FINE);

    // A decision made now is about what is really there (the policy's own `./data`
    // resolves through the symlink too, rule 3), and says so.
    let decisions = decide(
        &loaded.manifest.capabilities,
        "file-reader",
        loaded.instance.sha256(),
        &policy,
        &t.host(),
    );
    let data = decisions
        .items()
        .iter()
        .find(|d| d.request() == "./data")
        .unwrap();
    let vault = t.path("vault").display().to_string();
    assert_eq!(data.host_path(), Some(vault.as_str()), "{}", data.reason());
}

const WRITER_POLICY: &str = r#"
version = 1
[plugins.file-writer]
fs.read = ["./data"]
fs.write = ["./out"]
stdio = ["stdout"]
"#;

#[test]
fn writes_into_a_read_only_grant_are_refused() {
    let t = Tree::new();
    std::fs::write(t.path("work/out/moved.txt"), "from out").unwrap();
    let tries: &[&[&str]] = &[
        &["write", "/data/ok.txt", "pwned"],
        &["truncate", "/data/ok.txt"],
        &["append", "/data/ok.txt", "more"],
        &["write", "/data/new.txt", "x"],
        &["mkdir", "/data/newdir"],
        &["remove", "/data/ok.txt"],
        &["rename", "moved.txt", "/data/moved.txt"],
        &["hardlink", "moved.txt", "/data/linked.txt"],
        &["rename", "/data/ok.txt", "stolen.txt"],
    ];
    let mut all = tries.to_vec();
    all.push(&["write", "fresh.txt", "hello"]);
    all.push(&["read", "/data/ok.txt"]);
    let (d, out) = attempts(
        &example_bytes("file-writer"),
        WRITER_POLICY,
        &t.host(),
        &all,
    );
    assert_decided(
        &d,
        "./data",
        Outcome::Granted,
        "plugins.file-writer.fs.read[0]",
    );
    assert!(item(&d, "./data").reason().ends_with("read-only"));
    assert_decided(
        &d,
        "./out",
        Outcome::Granted,
        "plugins.file-writer.fs.write[0]",
    );
    assert_all_refused(&out[..tries.len()], tries);
    // Nothing in the read-only directory changed; the writable one still works.
    assert_eq!(
        std::fs::read_to_string(t.path("work/data/ok.txt")).unwrap(),
        FINE
    );
    let mut names: Vec<String> = std::fs::read_dir(t.path("work/data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ok.txt"]);
    assert_eq!(
        std::fs::read_to_string(t.path("work/out/moved.txt")).unwrap(),
        "from out"
    );
    assert!(!t.path("work/out/stolen.txt").exists());
    success(&out[tries.len()]);
    assert_eq!(
        std::fs::read_to_string(t.path("work/out/fresh.txt")).unwrap(),
        "hello"
    );
    assert_eq!(success(&out[tries.len() + 1]), FINE);
}

#[test]
fn symlinks_with_a_trailing_slash_are_refused() {
    let t = Tree::new();
    symlink("../../vault", t.path("work/data/dir")).unwrap();
    symlink("../../vault/", t.path("work/data/slash")).unwrap();
    symlink("../secret", t.path("work/data/file")).unwrap();
    symlink("../../vault/", t.path("work/out/wslash")).unwrap();
    let tries: &[&[&str]] = &[
        &["read", "/data/dir/hidden.txt"],
        &["read", "/data/slash/hidden.txt"],
        &["read", "/data/slash/./hidden.txt"],
        &["read", "/data/file/"],
        &["read", "/data/dir/"],
        &["write", "wslash/planted.txt", "x"],
        &["mkdir", "wslash/"],
        &["mkdir", "wslash/newdir/"],
        &["remove", "wslash/hidden.txt"],
    ];
    let mut all = tries.to_vec();
    all.push(&["read", "/data/ok.txt"]);
    let (d, out) = attempts(
        &example_bytes("file-writer"),
        WRITER_POLICY,
        &t.host(),
        &all,
    );
    assert_decided(
        &d,
        "./out",
        Outcome::Granted,
        "plugins.file-writer.fs.write[0]",
    );
    assert_all_refused(&out[..tries.len()], tries);
    assert!(!t.path("vault/planted.txt").exists());
    assert!(!t.path("vault/newdir").exists());
    assert!(t.path("vault/hidden.txt").exists());
    assert_eq!(success(&out[tries.len()]), FINE);

    let tries: &[&[&str]] = &[&["list", "dir/"], &["list", "slash"], &["list", "slash/"]];
    let (_, out) = attempts(
        &example_bytes("file-reader"),
        READER_POLICY,
        &t.host(),
        tries,
    );
    assert_all_refused(&out, tries);
    assert!(out.iter().all(|(_, text)| !text.contains("hidden.txt")));
}

#[test]
fn symlink_loops_end_in_an_error() {
    let t = Tree::new();
    symlink("loop", t.path("work/data/loop")).unwrap();
    symlink("b", t.path("work/data/a")).unwrap();
    symlink("a", t.path("work/data/b")).unwrap();
    let tries: &[&[&str]] = &[
        &["read", "loop"],
        &["read", "a"],
        &["list", "loop/"],
        &["read", "a/x"],
    ];
    let mut all = tries.to_vec();
    all.push(&["read", "ok.txt"]);
    let (_, out) = attempts(
        &example_bytes("file-reader"),
        READER_POLICY,
        &t.host(),
        &all,
    );
    assert_all_refused(&out[..tries.len()], tries);
    assert_eq!(success(&out[tries.len()]), FINE);

    // The declared directory itself a loop: denied, nothing granted.
    std::fs::rename(t.path("work/data"), t.path("work/real-data")).unwrap();
    symlink("data", t.path("work/data")).unwrap();
    let tries: &[&[&str]] = &[&["read", "ok.txt"]];
    let (d, out) = attempts(
        &example_bytes("file-reader"),
        READER_POLICY,
        &t.host(),
        tries,
    );
    assert_decided(&d, "./data", Outcome::Denied, "none");
    assert!(item(&d, "./data").reason().contains("cannot be resolved"));
    assert_all_refused(&out, tries);
}

#[test]
fn a_missing_declared_path_is_denied() {
    let t = Tree::new();
    std::fs::remove_dir_all(t.path("work/data")).unwrap();
    let tries: &[&[&str]] = &[&["read", "ok.txt"], &["read", "../secret"]];
    let (d, out) = attempts(
        &example_bytes("file-reader"),
        READER_POLICY,
        &t.host(),
        tries,
    );
    assert_decided(&d, "./data", Outcome::Denied, "none");
    let reason = item(&d, "./data").reason();
    assert!(reason.contains("does not exist"), "{reason}");
    assert_all_refused(&out, tries);
}

/// A WAT plugin declaring `fs_read` of `declared` that opens `target` relative to its
/// first preopen (fd 3), reads it and returns its content (or `open failed`).
fn probe(declared: &[&str], target: &str) -> Vec<u8> {
    let mut p = WatPlugin::new("probe");
    p.manifest = manifest_bytes_with(
        "probe",
        2,
        Capabilities {
            fs_read: declared
                .iter()
                .map(|d| PathPattern {
                    pattern: d.to_string(),
                    recursive: true,
                })
                .collect(),
            stdio: StdioCapability::default(),
            ..Capabilities::default()
        },
    );
    let failed = result_bytes(&ExecuteResult::Success("open failed".into()));
    p.imports = r#"
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))"#
        .into();
    p.extra = format!(
        r#"(data (i32.const 70000) "{path}")
  (data (i32.const 70100) "{failed}")
  (data (i32.const 80000) "\81\a7Success\da")"#,
        path = wat_bytes(target.as_bytes()),
        failed = wat_bytes(&failed),
    );
    p.execute_fn = Some(format!(
        r#"(local $n i32)
    (if (call $path_open (i32.const 3) (i32.const 1) (i32.const 70000) (i32.const {len})
                         (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 70400))
      (then (return {failed_packed})))
    (i32.store (i32.const 70408) (i32.const 80012))
    (i32.store (i32.const 70412) (i32.const 4000))
    (drop (call $fd_read (i32.load (i32.const 70400)) (i32.const 70408) (i32.const 1) (i32.const 70404)))
    (local.set $n (i32.load (i32.const 70404)))
    (i32.store8 (i32.const 80010) (i32.shr_u (local.get $n) (i32.const 8)))
    (i32.store8 (i32.const 80011) (i32.and (local.get $n) (i32.const 255)))
    (i64.or (i64.shl (i64.const 80000) (i64.const 32))
            (i64.extend_i32_u (i32.add (local.get $n) (i32.const 12))))"#,
        len = target.len(),
        failed_packed = WatPlugin::packed(70100, failed.len() as u32),
    ));
    p.bytes()
}

#[test]
fn tilde_and_relative_paths_resolve_before_any_comparison() {
    let t = Tree::new();
    // `~` declared, with `~` allowed but `~/.ssh` denied: `~` contains a denied path.
    let policy = r#"
version = 1
[defaults]
fs.deny = ["~/.ssh"]
[plugins.probe]
fs.read = ["~"]
"#;
    let (d, out) = attempts(&probe(&["~"], ".ssh/id_rsa"), policy, &t.host(), &[&[]]);
    assert_decided(&d, "~", Outcome::Denied, "defaults.fs.deny[0]");
    assert!(item(&d, "~").reason().contains("contains"));
    assert_eq!(out[0].0, Some(ExecuteResult::Success("open failed".into())));

    // The same path spelled with `..` and `.`: normalized, then denied the same way.
    let (d, out) = attempts(
        &probe(&["~/.ssh/../.ssh/."], "id_rsa"),
        policy,
        &t.host(),
        &[&[]],
    );
    assert_decided(
        &d,
        "~/.ssh/../.ssh/.",
        Outcome::Denied,
        "defaults.fs.deny[0]",
    );
    assert_eq!(out[0].0, Some(ExecuteResult::Success("open failed".into())));

    // A relative declaration that climbs out of the working directory is not inside
    // `./data` once normalized.
    let policy_data = r#"
version = 1
[plugins.probe]
fs.read = ["./data"]
"#;
    let (d, out) = attempts(
        &probe(&["./data/../.."], "vault/hidden.txt"),
        policy_data,
        &t.host(),
        &[&[]],
    );
    assert_decided(&d, "./data/../..", Outcome::Denied, "none");
    assert_eq!(out[0].0, Some(ExecuteResult::Success("open failed".into())));

    // The real file-reader run from inside `~/.ssh`: its `./data` (and the policy's)
    // resolve there, inside the denied `~/.ssh`.
    std::fs::create_dir(t.path("home/.ssh/data")).unwrap();
    let mut host = t.host();
    host.workdir = t.path("home/.ssh");
    let tries: &[&[&str]] = &[&["read", "../id_rsa"], &["read", "/data/../id_rsa"]];
    let (d, out) = attempts(&example_bytes("file-reader"), READER_POLICY, &host, tries);
    assert_decided(&d, "./data", Outcome::Denied, "defaults.fs.deny[0]");
    assert_all_refused(&out, tries);

    // Positive control: without the deny entry the probe does read through `~`. (With
    // warden's own cache and state kept outside `~`: a `~` that contains them is
    // denied by `builtin.protected`, whatever the policy says.)
    let open = "version = 1\n[plugins.probe]\nfs.read = [\"~\"]\n";
    let mut host = t.host();
    for (var, dir) in [("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state")] {
        host.env
            .push((var.to_string(), t.path(dir).display().to_string()));
    }
    let (d, out) = attempts(&probe(&["~"], ".ssh/id_rsa"), open, &host, &[&[]]);
    assert_decided(&d, "~", Outcome::Granted, "plugins.probe.fs.read[0]");
    assert_eq!(item(&d, "~").guest_path(), Some("/"));
    assert!(success(&out[0]).contains(SECRET));
}

#[test]
fn env_exfiltration_through_a_glob_is_stopped_variable_by_variable() {
    let t = Tree::new();
    let policy = r#"
version = 1
[defaults]
env.allow = ["*"]
env.deny = ["*SECRET*", "*_TOKEN"]
[plugins.file-reader]
stdio = ["stdout"]
"#;
    let mut host = t.host();
    host.env.extend([
        ("APP_NAME".to_string(), "visible".to_string()),
        ("APP_SECRET".to_string(), SECRET.to_string()),
        ("GITHUB_TOKEN".to_string(), SECRET.to_string()),
    ]);
    let tries: &[&[&str]] = &[&["env-all"], &["env", "APP_SECRET"], &["env", "APP_NAME"]];
    let (d, out) = attempts(&example_bytes("file-reader"), policy, &host, tries);
    // Rule 5: `APP_*` passes `APP_NAME` and withholds `APP_SECRET`, naming the rule.
    assert_decided(&d, "APP_*", Outcome::Granted, "defaults.env.allow[0]");
    let app = item(&d, "APP_*");
    assert_eq!(app.names(), Some(&["APP_NAME".to_string()][..]));
    assert_eq!(app.withheld().len(), 1);
    assert_eq!(app.withheld()[0].name, "APP_SECRET");
    assert_eq!(app.withheld()[0].rule, "defaults.env.deny[0]");
    assert!(
        app.reason().contains("withholds `APP_SECRET`"),
        "{}",
        app.reason()
    );
    assert_decided(&d, "HOME", Outcome::Granted, "defaults.env.allow[0]");
    for (_, text) in &out {
        assert!(!text.contains(SECRET), "{text}");
    }
    assert_eq!(success(&out[1]), "<unset>");
    assert_eq!(success(&out[2]), "visible");
    assert!(success(&out[0]).contains("APP_NAME=visible"));
    assert!(!success(&out[0]).contains("APP_SECRET"));
    assert!(!success(&out[0]).contains("GITHUB_TOKEN"));
    assert!(success(&out[0]).contains("HOME="));

    // Which secrets happen to be set changes nothing for the rest.
    host.env.retain(|(k, _)| k != "APP_SECRET");
    let (d, out) = attempts(&example_bytes("file-reader"), policy, &host, tries);
    assert_decided(&d, "APP_*", Outcome::Granted, "defaults.env.allow[0]");
    assert_eq!(
        item(&d, "APP_*").names(),
        Some(&["APP_NAME".to_string()][..])
    );
    assert!(item(&d, "APP_*").withheld().is_empty());
    assert_eq!(success(&out[2]), "visible");
    assert!(!out[0].1.contains(SECRET));
}

#[test]
fn the_cli_reports_the_deciding_rule_and_never_the_secret() {
    let t = Tree::new();
    let policy = policy_file(&t.root, "p.toml", READER_POLICY);
    let reader = example_plugin("file-reader");
    let workdir = t.path("work");
    let run = |args: &[&str]| {
        let mut all = vec![
            "run",
            "--json",
            "--policy",
            policy.to_str().unwrap(),
            "--workdir",
            workdir.to_str().unwrap(),
            reader.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = warden(&all);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!text.contains(SECRET), "{text}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET));
        (
            out.status.code(),
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        )
    };
    let (code, v) = run(&["read", "../secret"]);
    assert_eq!(code, Some(1));
    assert_eq!(v["outcome"], "plugin_error");
    assert_eq!(v["grants"][0]["request"], "./data");
    assert_eq!(v["grants"][0]["rule"], "plugins.file-reader.fs.read[0]");
    assert_eq!(v["grants"][0]["guest_path"], "/data");
    assert_eq!(
        v["grants"][0]["host_path"],
        t.path("work/data").display().to_string()
    );
    // HOME and APP_* are not allowed by this policy: denied, rule `none`.
    assert_eq!(v["denials"][0]["capability"], "env");
    assert_eq!(v["denials"][0]["rule"], "none");
    let (code, v) = run(&["read", "ok.txt"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["output"], FINE);
}

#[test]
fn the_policy_file_path_is_not_a_way_around_the_sandbox() {
    // `--workdir` pointing at the secret's directory: the declared `./data` does not
    // exist there, so nothing is granted.
    let t = Tree::new();
    let policy = policy_file(&t.root, "p.toml", READER_POLICY);
    let out = warden(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--workdir",
        t.path("vault").to_str().unwrap(),
        example_plugin("file-reader").to_str().unwrap(),
        "read",
        "hidden.txt",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET));
}

#[test]
fn the_kernels_interfaces_are_never_granted_in_any_mode() {
    let t = Tree::new();
    // Under a policy that allows everything, `/proc` would hand out the host's
    // environment (`self/environ`, a symlink that stays inside the preopen), its
    // memory and every other process; `/sys` and `/dev` the kernel and the devices.
    let cases = [
        ("/proc", "self/status"),
        ("/proc/self", "status"),
        ("/proc/self/", "environ"),
        ("/sys", "kernel/osrelease"),
        ("/dev", "null"),
        ("/dev/shm", "x"),
        ("/", "proc/self/status"),
    ];
    for mode in ["enforce", "audit"] {
        let policy = format!("version = 1\nmode = \"{mode}\"\n[defaults]\nfs.read = [\"/\"]\n");
        for (declared, target) in cases {
            let (d, out) = attempts(&probe(&[declared], target), &policy, &t.host(), &[&[]]);
            assert_decided(&d, declared, Outcome::Denied, "builtin.system");
            assert!(
                item(&d, declared)
                    .reason()
                    .contains("no policy can grant it"),
                "{}",
                item(&d, declared).reason()
            );
            assert_eq!(
                out[0].0,
                Some(ExecuteResult::Success("open failed".into())),
                "{mode} {declared}: {}",
                out[0].1
            );
        }
        // Positive control: the same policy grants an ordinary directory.
        let data = t.path("work/data").display().to_string();
        let (d, out) = attempts(&probe(&[&data], "ok.txt"), &policy, &t.host(), &[&[]]);
        assert_decided(&d, &data, Outcome::Granted, "defaults.fs.read[0]");
        assert_eq!(success(&out[0]), FINE);
    }
}
