//! `warden run` and its audit log, end to end: what each run leaves in the log, many
//! processes at once, failing closed, and secrets.

use crate::cli::warden_command;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A workspace with `data/` (holding `hello.txt`), `out/`, and a log path.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("data/hello.txt"), "greetings").unwrap();
        Workspace { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> PathBuf {
        self.path().join("log/audit.jsonl")
    }

    /// `warden run --policy policies/examples.toml --workdir WS --audit-log LOG ARGS`.
    fn command(&self, log: &Path, args: &[&str]) -> std::process::Command {
        let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples.toml");
        let mut cmd = warden_command();
        cmd.arg("run")
            .arg("--policy")
            .arg(policy)
            .arg("--workdir")
            .arg(self.path())
            .arg("--audit-log")
            .arg(log)
            .args(args);
        cmd
    }

    /// [`Workspace::command`] with the workspace's log, run to completion.
    fn run(&self, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = self.command(&self.log(), args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn records(&self) -> Vec<serde_json::Value> {
        log_records(&self.log())
    }
}

fn events(records: &[serde_json::Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect()
}

fn verify(log: &Path) -> Output {
    warden_command()
        .args(["audit", "verify", log.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn a_run_leaves_its_whole_story_in_order() {
    let ws = Workspace::new();
    let reader = example_plugin("file-reader");
    let out = ws.run(&[], &[reader.to_str().unwrap(), "read", "hello.txt"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "greetings\n");
    let records = ws.records();
    assert_eq!(
        events(&records),
        [
            "policy_loaded",
            "plugin_loaded",
            "grant", // fs_read ./data
            "grant", // env HOME
            "grant", // env APP_*
            "grant", // stdio stdout
            "run_start",
            "run_end"
        ]
    );
    let run_id = &records[0]["run_id"];
    assert!(records.iter().all(|r| &r["run_id"] == run_id));
    assert_eq!(records[2]["capability"], "fs_read");
    assert_eq!(records[2]["rule"], "plugins.file-reader.fs.read[0]");
    assert_eq!(records[6]["args_count"], 2);
    assert!(
        records[6].get("args").is_none(),
        "args logged without log_args"
    );
    assert_eq!(records[7]["outcome"], "success");
    assert_eq!(records[7]["exit_code"], 0);
    assert!(
        records.iter().all(|r| !r.to_string().contains("greetings")),
        "file content in the log"
    );
    let v = verify(&ws.log());
    assert_eq!(v.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("ok: 8 records, head "));
}

#[test]
fn escape_attempts_show_up_as_runtime_denies() {
    let ws = Workspace::new();
    std::fs::write(ws.path().join("secret"), "TOPSECRET").unwrap();
    let reader = example_plugin("file-reader");
    let out = ws.run(&[], &[reader.to_str().unwrap(), "read", "/data/../secret"]);
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("TOPSECRET"));
    let records = ws.records();
    let deny = records
        .iter()
        .find(|r| r["event"] == "runtime_deny")
        .expect("a runtime_deny record");
    assert_eq!(deny["call"], "path_open");
    assert_eq!(deny["preopen"], "/data");
    assert!(deny["path"].as_str().unwrap().contains(".."), "{deny}");
    assert!(
        !std::fs::read_to_string(ws.log())
            .unwrap()
            .contains("TOPSECRET")
    );
}

#[test]
fn eight_processes_running_plugins_keep_one_valid_chain() {
    let ws = Workspace::new();
    let reader = example_plugin("file-reader");
    let hello = example_plugin("hello");
    let children: Vec<_> = (0..8)
        .map(|i| {
            let args = if i % 2 == 0 {
                vec![reader.to_str().unwrap(), "read", "hello.txt"]
            } else {
                vec![hello.to_str().unwrap()]
            };
            ws.command(&ws.log(), &args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // file-reader: policy_loaded, plugin_loaded, 4 grants, run_start, run_end = 8;
    // hello: policy_loaded, plugin_loaded, run_start, run_end = 4 (it declares nothing).
    let records = ws.records();
    assert_eq!(records.len(), 4 * 8 + 4 * 4);
    let mut by_run = std::collections::HashMap::<String, usize>::new();
    for r in &records {
        *by_run
            .entry(r["run_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut sizes: Vec<usize> = by_run.values().copied().collect();
    sizes.sort();
    assert_eq!(sizes, [4, 4, 4, 4, 8, 8, 8, 8]);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as u64);
    }
    let v = verify(&ws.log());
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("ok: 48 records"));
}

#[test]
fn an_unwritable_log_fails_closed_and_the_plugin_never_runs() {
    let ws = Workspace::new();
    // The log's directory is a regular file: nothing can be created below it, even as
    // root.
    std::fs::write(ws.path().join("not-a-dir"), "").unwrap();
    let log = ws.path().join("not-a-dir/audit.jsonl");
    let writer = example_plugin("file-writer");
    let out = ws
        .command(
            &log,
            &[writer.to_str().unwrap(), "write", "proof.txt", "ran"],
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(74),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(!ws.path().join("out/proof.txt").exists(), "the plugin ran");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was run"));
}

#[test]
fn secrets_in_env_vars_never_reach_the_log() {
    let ws = Workspace::new();
    let reader = example_plugin("file-reader");
    // Allowed (APP_* is granted while no denied variable is set) ...
    let out = ws.run(
        &[("APP_COLOR", "s3cr3t-allowed-value")],
        &[reader.to_str().unwrap(), "env", "APP_COLOR"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "s3cr3t-allowed-value\n"
    );
    // ... and denied (APP_TOKEN matches defaults.env.deny `*_TOKEN`, so APP_* is denied).
    let out = ws.run(
        &[("APP_TOKEN", "s3cr3t-denied-value")],
        &[reader.to_str().unwrap(), "env", "APP_TOKEN"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "<unset>\n");
    let log = std::fs::read_to_string(ws.log()).unwrap();
    assert!(!log.contains("s3cr3t"), "a secret value reached the log");
    assert!(log.contains("APP_COLOR"), "the granted name is recorded");
}

#[test]
fn limits_and_traps_leave_run_start_the_cause_and_run_end() {
    let ws = Workspace::new();
    let mut spin = WatPlugin::new("spin");
    spin.execute_fn = Some("(loop $l (br $l)) (unreachable)".into());
    let mut trap = WatPlugin::new("trapper");
    trap.execute_fn = Some("(unreachable)".into());
    for (plugin, code, cause) in [(&spin, 125, "limit_exceeded"), (&trap, 70, "run_end")] {
        let path = ws.path().join(format!("{}.wasm", plugin.wat().len()));
        std::fs::write(&path, plugin.bytes()).unwrap();
        let before = if ws.log().exists() {
            ws.records().len()
        } else {
            0
        };
        let out = ws.run(&[], &[path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(code));
        let records = ws.records();
        let ev = events(&records[before..]);
        let start = ev.iter().position(|e| *e == "run_start").unwrap();
        assert_eq!(ev[start + 1], cause, "{ev:?}");
        assert_eq!(*ev.last().unwrap(), "run_end");
        let end = records.last().unwrap();
        assert_eq!(end["exit_code"], code);
        assert_eq!(end["outcome"], if code == 125 { "limit" } else { "trap" });
    }
    assert_eq!(verify(&ws.log()).status.code(), Some(0));
}

#[test]
fn a_plugin_never_gets_the_directory_of_the_log_it_is_audited_in() {
    // `--audit-log` inside the directory the policy grants file-writer for writing:
    // the grant is denied by `builtin.protected`, the plugin runs without it
    // (`on_denied = "run"`) and cannot touch the log.
    let ws = Workspace::new();
    let log = ws.path().join("out/audit.jsonl");
    let writer = example_plugin("file-writer");
    let out = ws
        .command(
            &log,
            &[writer.to_str().unwrap(), "write", "audit.jsonl", "forged"],
        )
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("forged"), "{text}");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deny = records
        .iter()
        .find(|r| r["event"] == "deny" && r["capability"] == "fs_write")
        .expect("the write grant is denied");
    assert_eq!(deny["rule"], "builtin.protected", "{deny}");
    assert!(
        deny["reason"].as_str().unwrap().contains("audit log"),
        "{deny}"
    );
    assert_eq!(events(&records).last(), Some(&"run_end"));
    assert!(verify(&log).status.success());
}

#[test]
fn a_plugin_cannot_copy_a_granted_secret_into_the_log() {
    let ws = Workspace::new();
    let reader = example_plugin("file-reader");
    let secret = "s3cr3t-granted-value";
    // The plugin knows APP_COLOR's value (it was granted) and asks to open a path
    // made of it, which is refused and recorded.
    let out = ws.run(
        &[("APP_COLOR", secret)],
        &[
            reader.to_str().unwrap(),
            "read",
            &format!("/data/../APP_COLOR={secret}"),
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(ws.log()).unwrap();
    assert!(!text.contains(secret), "{text}");
    let records = ws.records();
    let deny = records
        .iter()
        .find(|r| r["event"] == "runtime_deny")
        .expect("the attempt is recorded");
    assert_eq!(deny["path"], "../APP_COLOR=<redacted:APP_COLOR>", "{deny}");
    assert!(verify(&ws.log()).status.success());
}

/// A tmpfs of `size` mounted at `dir` for one test; unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root, as CI has");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A plugin granted `./out` that fills its file system, then makes `attempts` escape
/// attempts with long paths, and returns `Success`.
fn disk_filler(attempts: u32) -> Vec<u8> {
    use warden::abi::{Capabilities, ExecuteResult, PathPattern};
    let mut p = WatPlugin::new("filler");
    p.manifest = manifest_bytes_with(
        "filler",
        2,
        Capabilities {
            fs_write: vec![PathPattern {
                pattern: "./out".into(),
                recursive: true,
            }],
            ..Capabilities::default()
        },
    );
    p.result = result_bytes(&ExecuteResult::Success("filled".into()));
    let escape = format!("../{}", "x".repeat(1000));
    p.imports = r#"
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))"#
        .into();
    p.memory = r#"(memory (export "memory") 8)"#.into();
    p.extra = format!(
        r#"(data (i32.const 70000) "fill")
  (data (i32.const 72000) "{escape}")"#
    );
    p.execute_fn = Some(format!(
        r#"(local $fd i32) (local $i i32)
    ;; /out/fill, created for writing; then 64 KiB writes until the disk is full.
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 70000) (i32.const 4)
                           (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 70400)))
    (local.set $fd (i32.load (i32.const 70400)))
    (i32.store (i32.const 70408) (i32.const 262144))
    (i32.store (i32.const 70412) (i32.const 65536))
    (block $full (loop $more
      (br_if $full (call $fd_write (local.get $fd) (i32.const 70408) (i32.const 1) (i32.const 70416)))
      (br_if $full (i32.eqz (i32.load (i32.const 70416))))
      (br $more)))
    ;; Then the escape attempts, each refused and recorded.
    (block $done (loop $try
      (br_if $done (i32.ge_u (local.get $i) (i32.const {attempts})))
      (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 72000) (i32.const {len})
                             (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 70400)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $try)))
    {result}"#,
        len = escape.len(),
        result = WatPlugin::packed(RESULT_AT, p.result.len() as u32),
    ));
    p.bytes()
}

#[test]
fn a_plugin_that_fills_the_disk_cannot_erase_its_closing_records() {
    let ws = tempfile::tempdir().unwrap();
    let disk = ws.path().join("disk");
    let _tmpfs = Tmpfs::mount(&disk, "8m");
    std::fs::create_dir(disk.join("out")).unwrap();
    let plugin = ws.path().join("filler.wasm");
    std::fs::write(&plugin, disk_filler(200)).unwrap();
    let policy = crate::policy::policy_file(
        ws.path(),
        "p.toml",
        "version = 1\n[plugins.filler]\nfs.write = [\"./out\"]\n",
    );
    let log = disk.join("log/audit.jsonl");
    let out = warden_command()
        .arg("run")
        .arg("--policy")
        .arg(&policy)
        .arg("--workdir")
        .arg(&disk)
        .arg("--audit-log")
        .arg(&log)
        .arg(&plugin)
        .output()
        .unwrap();
    // The plugin did fill the disk.
    let free = rustix::fs::statvfs(&disk).unwrap();
    assert!(
        free.f_bavail * free.f_frsize < 64 * 1024,
        "the disk was not filled"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = log_records(&log);
    let denies = records
        .iter()
        .filter(|r| r["event"] == "runtime_deny")
        .count();
    assert_eq!(denies, warden::audit::MAX_LOGGED_DENIALS);
    let end = records.last().unwrap();
    assert_eq!(end["event"], "run_end", "{end}");
    assert_eq!(end["outcome"], "success", "{end}");
    assert_eq!(
        end["runtime_denials_dropped"],
        200 - warden::audit::MAX_LOGGED_DENIALS as u64,
        "{end}"
    );
    assert!(verify(&log).status.success());
}

#[test]
fn a_symlink_at_the_audit_log_path_is_not_followed() {
    let ws = Workspace::new();
    let elsewhere = ws.path().join("elsewhere.jsonl");
    std::fs::write(&elsewhere, "").unwrap();
    std::fs::create_dir(ws.path().join("log")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, ws.log()).unwrap();
    let out = ws.run(&[], &[example_plugin("hello").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(74));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a symlink, which warden does not follow"),
        "{stderr}"
    );
    // The message names the real file, for `--audit-log`.
    let real = std::fs::canonicalize(&elsewhere).unwrap();
    assert!(
        stderr.contains(&format!("(it leads to `{}`)", real.display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "the plugin ran");
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "");
}

#[test]
fn a_run_whose_run_end_was_cut_off_fails_verify_and_is_named() {
    // Two real runs; then the tail is cut right after the second run's run_start (the
    // writer ran out of disk, or the end of the file was lost). The chain of what is
    // left still holds, but the second run has no run_end.
    let ws = Workspace::new();
    let reader = example_plugin("file-reader");
    let hello = example_plugin("hello");
    for args in [
        vec![reader.to_str().unwrap(), "read", "hello.txt"],
        vec![hello.to_str().unwrap()],
    ] {
        let out = ws.run(&[], &args);
        assert_eq!(out.status.code(), Some(0));
    }
    let records = ws.records();
    assert_eq!(
        events(&records[8..]),
        ["policy_loaded", "plugin_loaded", "run_start", "run_end"]
    );
    let run_id = records[11]["run_id"].as_str().unwrap().to_owned();
    let text = std::fs::read_to_string(ws.log()).unwrap();
    let kept: Vec<&str> = text.lines().take(11).collect();
    std::fs::write(ws.log(), format!("{}\n", kept.join("\n"))).unwrap();

    let v = verify(&ws.log());
    let stdout = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(1), "{stdout}");
    let log = ws.log();
    let log = log.to_str().unwrap();
    // The run is named with the place of its run_start (line 11, seq 10) ...
    assert!(
        stdout.contains(&format!(
            "incomplete run: {log}:11: seq 10: run {run_id} has a run_start but no run_end"
        )),
        "{stdout}"
    );
    // ... the first run, which ended, is not ...
    let first = records[0]["run_id"].as_str().unwrap();
    assert!(!stdout.contains(first), "{stdout}");
    // ... and the last line says what holds.
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("incomplete: the 11 records chain correctly, head "),
        "{stdout}"
    );
}
