//! Runtime denials: what a plugin tries past its grants through WASI is refused and
//! shows up in `RunReport::runtime_denials`, and symlinks out of a grant are refused.
//! Sandboxes come from the real pipeline (`warden::host::Warden`), without a log.

use crate::common::*;
use std::path::{Path, PathBuf};
use warden::abi::{Capabilities, ExecuteResult, PathPattern};
use warden::host::{Loaded, Plugin, PluginSource, PolicySource, Warden};
use warden::policy::Policy;
use warden::runtime::observed::MAX_RUNTIME_DENIALS;
use warden::runtime::shadow::SYMLINK_TARGET_REASON;
use warden::runtime::{GuestCall, Refusal, RunReport, RuntimeDeny, RuntimeErrorKind};

/// A host tree: `data/ok.txt`, `data/sub/`, `out/a.txt`, `out/sub/`, `secret` next to
/// them, and `home/` (the host user's home).
pub fn host_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("home")).unwrap();
    std::fs::create_dir_all(root.join("data/sub")).unwrap();
    std::fs::create_dir_all(root.join("out/sub")).unwrap();
    std::fs::write(root.join("data/ok.txt"), "fine").unwrap();
    std::fs::write(root.join("out/a.txt"), "a").unwrap();
    std::fs::write(root.join("secret"), "top secret").unwrap();
    dir
}

/// The shipped policy for the example plugins.
pub fn examples_policy() -> Policy {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/examples.toml");
    Policy::parse(
        "policies/examples.toml",
        &std::fs::read_to_string(path).unwrap(),
    )
    .unwrap()
}

/// Loads `wasm` in `root` through the host pipeline, with the sandbox `policy` grants
/// on a host whose environment is `env` (and `HOME` is `root/home`), without an audit
/// log.
pub fn load_sandboxed(root: &Path, wasm: &[u8], policy: &Policy, env: &[(&str, &str)]) -> Plugin {
    let warden = Warden::builder()
        .worker_program(env!("CARGO_BIN_EXE_warden"))
        .policy(PolicySource::Policy(Box::new(policy.clone())))
        .without_audit()
        .without_cache()
        .workdir(root)
        .home(root.join("home"))
        .env(
            env.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        )
        .build()
        .unwrap();
    match warden.load(PluginSource::bytes("test.wasm", wasm)).unwrap() {
        Loaded::Ready(plugin) => plugin,
        Loaded::Refused(r) => panic!("refused: {}", r.reason()),
    }
}

fn run(root: &Path, plugin: &str, args: &[&str]) -> RunReport {
    let loaded = load_sandboxed(root, &example_bytes(plugin), &examples_policy(), &[]);
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    loaded.instance().run(&args)
}

fn user_error(report: &RunReport) -> String {
    match &report.result {
        Ok(ExecuteResult::Error(e)) => e.message.clone(),
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn perm(call: &'static str, path: &str, target: Option<&str>, preopen: &str) -> RuntimeDeny {
    RuntimeDeny {
        call,
        path: path.into(),
        target: target.map(Into::into),
        preopen: Some(preopen.into()),
        errno: Refusal::Perm,
        reason: None,
    }
}

/// Every path under `root`, with symlink targets.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push(format!("{rel} -> {}", target.display()));
            } else if meta.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(path);
            } else {
                out.push(format!("{rel} ({} bytes)", meta.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn reading_past_the_grant_is_a_runtime_deny_naming_call_and_path() {
    let dir = host_tree();
    for path in ["../secret", "/data/../secret", "sub/../../secret"] {
        let report = run(dir.path(), "file-reader", &["read", path]);
        assert!(user_error(&report).starts_with(&format!("cannot read {path}")));
        let recorded = &report.runtime_denials.recorded;
        assert_eq!(recorded.len(), 1, "{path}: {recorded:?}");
        assert_eq!(recorded[0].call, "path_open");
        assert!(recorded[0].path.ends_with("../secret"), "{recorded:?}");
        assert_eq!(recorded[0].preopen.as_deref(), Some("/data"));
        assert_eq!(recorded[0].errno, Refusal::Perm);
    }
}

#[test]
fn work_inside_the_grant_records_nothing() {
    let dir = host_tree();
    let report = run(dir.path(), "file-reader", &["read", "ok.txt"]);
    assert_eq!(
        report.result.unwrap(),
        ExecuteResult::Success("fine".into())
    );
    assert!(report.runtime_denials.is_empty());
    // A file that is not there is no attempt to leave the grant.
    let report = run(dir.path(), "file-reader", &["read", "missing"]);
    user_error(&report);
    assert!(
        report.runtime_denials.is_empty(),
        "{:?}",
        report.runtime_denials
    );
    let report = run(dir.path(), "file-writer", &["write", "new.txt", "x"]);
    assert!(
        matches!(report.result, Ok(ExecuteResult::Success(_))),
        "{:?}",
        report.result
    );
    assert!(report.runtime_denials.is_empty());
}

#[test]
fn file_writer_escape_attempts_are_runtime_denies_and_change_nothing() {
    let cases: [(&[&str], RuntimeDeny); 7] = [
        (
            &["write", "../../escaped", "x"],
            perm("path_open", "../../escaped", None, "/out"),
        ),
        (
            &["append", "../secret", "x"],
            perm("path_open", "../secret", None, "/out"),
        ),
        (
            &["mkdir", "../newdir"],
            perm("path_create_directory", "../newdir", None, "/out"),
        ),
        (
            &["rename", "a.txt", "../../moved"],
            perm("path_rename", "a.txt", Some("../../moved"), "/out"),
        ),
        (
            &["hardlink", "a.txt", "../linked"],
            perm("path_link", "a.txt", Some("../linked"), "/out"),
        ),
        (
            &["remove", "../secret"],
            perm("path_filestat_get", "../secret", None, "/out"),
        ),
        // A write in the read-only grant.
        (
            &["write", "/data/new", "x"],
            perm("path_open", "new", None, "/data"),
        ),
    ];
    for (args, expected) in cases {
        let dir = host_tree();
        let before = tree(dir.path());
        let report = run(dir.path(), "file-writer", args);
        user_error(&report);
        assert_eq!(report.runtime_denials.recorded, vec![expected], "{args:?}");
        assert_eq!(tree(dir.path()), before, "{args:?} changed the host");
    }
}

#[test]
fn symlinks_leading_out_of_the_grant_are_refused_and_nothing_is_created() {
    for (target, link) in [
        ("../../secret", "link"),
        ("/etc/passwd", "abs"),
        // `..` is refused even where it would stay inside: see `runtime::shadow`.
        ("../a.txt", "sub/up"),
        ("sub/../../secret", "sneaky"),
    ] {
        let dir = host_tree();
        let before = tree(dir.path());
        let report = run(dir.path(), "file-writer", &["symlink", target, link]);
        let message = user_error(&report);
        assert!(
            message.starts_with(&format!("symlink {link}: ")),
            "{message}"
        );
        assert_eq!(tree(dir.path()), before, "{target} created something");
        assert_eq!(
            report.runtime_denials.recorded,
            vec![RuntimeDeny {
                reason: Some(SYMLINK_TARGET_REASON),
                ..perm("path_symlink", link, Some(target), "/out")
            }]
        );
    }
}

#[test]
fn symlinks_that_only_descend_are_created() {
    let dir = host_tree();
    let report = run(
        dir.path(),
        "file-writer",
        &["symlink", "sub/../a.txt", "bad"],
    );
    user_error(&report);
    let report = run(
        dir.path(),
        "file-writer",
        &["symlink", "a.txt", "sub/../good"],
    );
    assert!(
        matches!(report.result, Ok(ExecuteResult::Success(_))),
        "{:?}",
        report.result
    );
    assert!(report.runtime_denials.is_empty());
    assert_eq!(
        std::fs::read_link(dir.path().join("out/good")).unwrap(),
        Path::new("a.txt")
    );
    assert!(!dir.path().join("out/bad").exists());
}

/// The `probe` WAT plugin declaring `./data` (read) and `./out` (write), granted by its
/// policy table; `path` is at address 512 and `execute` runs `body`.
pub fn probe(root: &Path, body: &str, path: &[u8]) -> (Plugin, Vec<String>) {
    probe_with(root, path, |p| {
        p.execute_fn = Some(format!(
            "{body} {}",
            WatPlugin::packed(RESULT_AT, p.result.len() as u32)
        ));
    })
}

/// [`probe`] with the plugin shaped by `shape` (the path is at 512).
pub fn probe_with(
    root: &Path,
    path: &[u8],
    shape: impl FnOnce(&mut WatPlugin),
) -> (Plugin, Vec<String>) {
    let caps = Capabilities {
        fs_read: vec![PathPattern {
            pattern: "./data".into(),
            recursive: true,
        }],
        fs_write: vec![PathPattern {
            pattern: "./out".into(),
            recursive: true,
        }],
        ..Capabilities::default()
    };
    let mut p = WatPlugin::new("probe");
    p.manifest = manifest_bytes_with("probe", 2, caps);
    p.imports = r#"
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $fd_renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))"#
        .into();
    p.extra = format!(r#"(data (i32.const 512) "{}")"#, wat_bytes(path));
    shape(&mut p);
    let policy = Policy::parse(
        "probe.toml",
        "version = 1\n[plugins.probe]\nfs.read = [\"./data\"]\nfs.write = [\"./out\"]\n",
    )
    .unwrap();
    let loaded = load_sandboxed(root, &p.bytes(), &policy, &[]);
    let guest: Vec<String> = loaded
        .instance()
        .sandbox()
        .preopens()
        .iter()
        .map(|p| p.guest_path().to_owned())
        .collect();
    assert_eq!(guest.len(), 2, "{guest:?}");
    (loaded, guest)
}

/// `path_open(fd, <the path at 512, len bytes>)`, result dropped.
pub fn open_at(fd: u32, len: usize) -> String {
    format!(
        "(drop (call $path_open (i32.const {fd}) (i32.const 0) (i32.const 512) (i32.const {len}) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 256)))"
    )
}

#[test]
fn runtime_denials_are_capped_and_the_rest_counted() {
    let dir = host_tree();
    let body = format!(
        "(local $i i32) (loop $l {} (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 1250))))",
        open_at(3, 2)
    );
    let (loaded, _) = probe(dir.path(), &body, b"..");
    let report = loaded.instance().run(&[]);
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!(report.runtime_denials.recorded.len(), MAX_RUNTIME_DENIALS);
    assert_eq!(report.runtime_denials.dropped, 250);
}

#[test]
fn the_preopen_is_named_after_renumbering_and_forgotten_after_closing() {
    let dir = host_tree();
    // Move preopen fd 3 to 9, close preopen fd 4, then try `../secret` at 9, 3 and 4.
    let body = format!(
        "(drop (call $fd_renumber (i32.const 3) (i32.const 9))) (drop (call $fd_close (i32.const 4))) {} {} {}",
        open_at(9, 9),
        open_at(3, 9),
        open_at(4, 9),
    );
    let (loaded, guest) = probe(dir.path(), &body, b"../secret");
    let report = loaded.instance().run(&[]);
    assert!(report.result.is_ok(), "{:?}", report.result);
    // fd 3 and 4 no longer exist: those opens fail with BADF, which is no refusal.
    assert_eq!(
        report.runtime_denials.recorded,
        vec![perm("path_open", "../secret", None, &guest[0])]
    );
}

#[test]
fn attempts_in_a_start_function_or_initialize_are_kept_when_it_traps() {
    // Each tries `../secret` at the first preopen and traps when that was refused
    // (while the manifest is read there is no preopen, the call fails with BADF and
    // loading goes on): the trap must not take the attempt out of the record.
    let dir = host_tree();
    let attempt = "(if (i32.eq (call $path_open (i32.const 3) (i32.const 0) (i32.const 512) (i32.const 9) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 256)) (i32.const 63)) (then unreachable))";
    for (what, call) in [
        ("start", GuestCall::Instantiate),
        ("_initialize", GuestCall::Initialize),
    ] {
        let (loaded, guest) = probe_with(dir.path(), b"../secret", |p| {
            p.extra.push_str(&format!("\n  (func $early {attempt})"));
            p.extra.push_str(if what == "start" {
                "\n  (start $early)"
            } else {
                "\n  (export \"_initialize\" (func $early))"
            });
        });
        let report = loaded.instance().run(&[]);
        let err = report.result.expect_err(what);
        assert!(
            matches!(err.kind, RuntimeErrorKind::Trap { .. }) && err.call == Some(call),
            "{what}: {err}"
        );
        assert_eq!(
            report.runtime_denials.recorded,
            vec![perm("path_open", "../secret", None, &guest[0])],
            "{what}"
        );
    }
}
