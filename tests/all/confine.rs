//! The second wall: a plugin that escaped wasm, played by the escape simulator
//! (`warden_escape`, cargo feature `escape-simulator`), runs in a confined worker and
//! finds nothing the policy did not grant.
//!
//! Each hostile plugin is hand-written WAT that makes raw system calls through the
//! simulator and answers `Success` with their errnos in decimal, one per step,
//! separated by spaces. Each case runs through `warden run` and through the host API,
//! under `isolation = "process"`, and asserts the exact errno, that nothing escaped
//! (no file appeared, the server saw no connection, the parent lives, no marker in the
//! log) and that nothing was lost from the log (it verifies, and every `run_start`
//! has its `run_end`). Where it shows the wall is what stops the escape, the same
//! plugin runs with `isolation = "in-process"` and succeeds.
//!
//! These tests need Landlock (ABI 6 for signal scoping) and seccomp, as this machine
//! and CI have; `run_start_records_the_confinement_on_this_machine` says which
//! features the kernel offers.

use crate::common::*;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::mpsc;
use std::time::Duration;
use warden::abi::{Capabilities, ExecuteResult, PathPattern};
use warden::host::{Loaded, Warden};

const EPERM: i32 = 1;
const EACCES: i32 = 13;

/// What an escaped plugin tries, in order; each step but [`Step::AbortWhenGivenArgs`]
/// adds one number to the answer.
enum Step {
    /// `open(path, write ? O_WRONLY|O_CREAT : O_RDONLY)`: its errno.
    Open(PathBuf, bool),
    /// `execve(path)`: its errno.
    Exec(&'static str),
    /// A TCP connect to `host:port`: its errno.
    Connect(&'static str, u16),
    /// `write(fd, marker)` on every descriptor 0..1023: how many writes succeeded.
    WriteEveryFd(String),
    /// `getppid()`.
    ParentPid,
    /// `kill(getppid(), sig)`: its errno.
    KillParent(i32),
    /// `ptrace(PTRACE_ATTACH, getppid())`: its errno.
    PtraceParent,
    /// `open("/proc/<getppid()>/environ")`: its errno.
    OpenParentEnviron,
    /// `abort()` when the call has arguments (their encoding is longer than an empty
    /// array's one byte).
    AbortWhenGivenArgs,
    /// WASI `path_open` for reading, relative to the first granted directory: the
    /// WASI errno.
    WasiOpen(&'static str),
}

/// Where the step's strings go, the answer, and the scratch for the environ path.
const STRINGS_AT: u32 = 70_000;
const ANSWER_AT: u32 = 80_000;
const PROC_AT: u32 = 60_000;
const ENVIRON_AT: u32 = 60_100;
const WASI_FD_AT: u32 = 59_000;

/// A WAT plugin named `esc` declaring `caps` that performs `steps`.
fn escape_plugin(caps: Capabilities, steps: &[Step]) -> Vec<u8> {
    let mut p = WatPlugin::new("esc");
    p.manifest = manifest_bytes_with("esc", 2, caps);
    p.imports = r#"
  (import "warden_escape" "open" (func $open (param i32 i32 i32) (result i32)))
  (import "warden_escape" "exec" (func $exec (param i32 i32) (result i32)))
  (import "warden_escape" "connect" (func $connect (param i32 i32 i32) (result i32)))
  (import "warden_escape" "write_fd" (func $write_fd (param i32 i32 i32) (result i32)))
  (import "warden_escape" "parent_pid" (func $parent_pid (result i32)))
  (import "warden_escape" "kill" (func $kill (param i32 i32) (result i32)))
  (import "warden_escape" "ptrace_attach" (func $ptrace_attach (param i32) (result i32)))
  (import "warden_escape" "abort" (func $abort))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#
        .into();
    let mut data = String::new();
    let mut body = String::from("(local $fd i32) (local $n i32) (local $end i32)\n");
    let mut at = STRINGS_AT;
    let mut place = |bytes: &[u8], data: &mut String| {
        let here = at;
        data.push_str(&format!(
            "(data (i32.const {here}) \"{}\")\n",
            wat_bytes(bytes)
        ));
        at += bytes.len() as u32 + 1;
        (here, bytes.len())
    };
    for step in steps {
        let code = match step {
            Step::Open(path, write) => {
                let (s, n) = place(path.to_str().unwrap().as_bytes(), &mut data);
                format!(
                    "(call $put (call $open (i32.const {s}) (i32.const {n}) (i32.const {})))",
                    i32::from(*write)
                )
            }
            Step::Exec(path) => {
                let (s, n) = place(path.as_bytes(), &mut data);
                format!("(call $put (call $exec (i32.const {s}) (i32.const {n})))")
            }
            Step::Connect(host, port) => {
                let (s, n) = place(host.as_bytes(), &mut data);
                format!(
                    "(call $put (call $connect (i32.const {s}) (i32.const {n}) (i32.const {port})))"
                )
            }
            Step::WriteEveryFd(marker) => {
                let (s, n) = place(marker.as_bytes(), &mut data);
                format!(
                    "(local.set $fd (i32.const 0)) (local.set $n (i32.const 0))
    (loop $next
      (if (i32.eqz (call $write_fd (local.get $fd) (i32.const {s}) (i32.const {n})))
        (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $fd) (i32.const 1024))))
    (call $put (local.get $n))"
                )
            }
            Step::ParentPid => "(call $put (call $parent_pid))".into(),
            Step::KillParent(sig) => {
                format!("(call $put (call $kill (call $parent_pid) (i32.const {sig})))")
            }
            Step::PtraceParent => "(call $put (call $ptrace_attach (call $parent_pid)))".into(),
            Step::OpenParentEnviron => format!(
                "(local.set $end (call $digits_at (i32.const {digits}) (call $parent_pid)))
    (memory.copy (local.get $end) (i32.const {ENVIRON_AT}) (i32.const 8))
    (call $put (call $open (i32.const {PROC_AT})
                           (i32.sub (i32.add (local.get $end) (i32.const 8)) (i32.const {PROC_AT}))
                           (i32.const 0)))",
                digits = PROC_AT + 6
            ),
            Step::AbortWhenGivenArgs => {
                "(if (i32.gt_u (local.get $len) (i32.const 1)) (then (call $abort)))".into()
            }
            Step::WasiOpen(path) => {
                let (s, n) = place(path.as_bytes(), &mut data);
                format!(
                    "(call $put (call $path_open (i32.const 3) (i32.const 0) (i32.const {s}) (i32.const {n})
                                 (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0)
                                 (i32.const {WASI_FD_AT})))"
                )
            }
        };
        body.push_str("    ");
        body.push_str(&code);
        body.push('\n');
    }
    assert!(
        at < PROC_AT.max(ANSWER_AT),
        "the step strings overflow their area"
    );
    body.push_str("    (call $answer)");
    p.execute_fn = Some(body);
    // The answer is `{"Success": str16}` at ANSWER_AT; `$put` appends a number in
    // decimal (a space before all but the first) at `$out`.
    p.extra = format!(
        r#"{data}
  (data (i32.const {ANSWER_AT}) "\81\a7Success\da")
  (data (i32.const {PROC_AT}) "/proc/")
  (data (i32.const {ENVIRON_AT}) "/environ")
  (global $out (mut i32) (i32.const {text}))
  (func $digits_at (param $at i32) (param $n i32) (result i32)
    (if (i32.ge_u (local.get $n) (i32.const 10))
      (then (local.set $at (call $digits_at (local.get $at) (i32.div_u (local.get $n) (i32.const 10))))))
    (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
    (i32.add (local.get $at) (i32.const 1)))
  (func $put (param $n i32)
    (if (i32.ne (global.get $out) (i32.const {text}))
      (then (i32.store8 (global.get $out) (i32.const 32))
            (global.set $out (i32.add (global.get $out) (i32.const 1)))))
    (global.set $out (call $digits_at (global.get $out) (local.get $n))))
  (func $answer (result i64) (local $len i32)
    (local.set $len (i32.sub (global.get $out) (i32.const {text})))
    (i32.store8 (i32.const {hi}) (i32.shr_u (local.get $len) (i32.const 8)))
    (i32.store8 (i32.const {lo}) (i32.and (local.get $len) (i32.const 255)))
    (i64.or (i64.shl (i64.const {ANSWER_AT}) (i64.const 32))
            (i64.extend_i32_u (i32.add (local.get $len) (i32.const 12)))))"#,
        text = ANSWER_AT + 12,
        hi = ANSWER_AT + 10,
        lo = ANSWER_AT + 11,
    );
    p.bytes()
}

fn dir(pattern: &str) -> PathPattern {
    PathPattern {
        pattern: pattern.into(),
        recursive: true,
    }
}

/// Declares reading `./data` and writing `./out`.
fn data_and_out() -> Capabilities {
    Capabilities {
        fs_read: vec![dir("./data")],
        fs_write: vec![dir("./out")],
        ..Capabilities::default()
    }
}

/// The ways a plugin is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `warden run --json`.
    Run,
    /// `warden::host::Warden`, loading the plugin file and calling it.
    Host,
}

const BOTH: [Via; 2] = [Via::Run, Via::Host];

/// How one call ended.
#[derive(Debug)]
struct Ran {
    exit_code: i32,
    /// `success`, `limit`, `worker_died`, ...
    outcome: String,
    /// The plugin's `Success` text, or warden's error.
    output: String,
    /// For `warden run`: its stdout and stderr, for what must not show there.
    printed: String,
}

impl Ran {
    /// The numbers of a `Success` answer.
    fn numbers(&self) -> Vec<i64> {
        assert_eq!(self.outcome, "success", "{self:?}");
        self.output
            .split(' ')
            .map(|n| n.parse().unwrap_or_else(|_| panic!("{self:?}")))
            .collect()
    }
}

/// A working folder: `home/canary` (the `HOME` of `warden run`), `data/hello.txt`
/// (granted for reading), `out/` (for writing), a policy, the plugin and a log.
struct Site {
    dir: tempfile::TempDir,
}

const CANARY: &str = "CANARY-of-the-home-3f9d";

impl Site {
    fn new(policy: &str, wasm: &[u8]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "data", "out"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("home/canary"), CANARY).unwrap();
        std::fs::write(dir.path().join("data/hello.txt"), "greetings").unwrap();
        std::fs::write(dir.path().join("plugin.wasm"), wasm).unwrap();
        let site = Site { dir };
        site.set_policy(policy);
        site
    }

    fn set_policy(&self, policy: &str) {
        crate::policy::policy_file(self.dir.path(), "policy.toml", policy);
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn log(&self) -> PathBuf {
        self.path("log/audit.jsonl")
    }

    /// `warden run [flags] plugin.wasm -- args` with `env` added; `HOME` is `home/`.
    fn warden_run(&self, flags: &[&str], args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = crate::cli::warden_command();
        cmd.arg("run")
            .args(flags)
            .arg("--policy")
            .arg(self.path("policy.toml"))
            .arg("--audit-log")
            .arg(self.log())
            .arg("--workdir")
            .arg(self.dir.path())
            .arg(self.path("plugin.wasm"))
            .arg("--")
            .args(args)
            .env("HOME", self.path("home"))
            .env("XDG_CACHE_HOME", self.path("cache"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn host(&self) -> Warden {
        Warden::builder()
            .worker_program(env!("CARGO_BIN_EXE_warden"))
            .policy_file(self.path("policy.toml"))
            .audit_log(self.log())
            .workdir(self.dir.path())
            .cache_dir(self.path("cache"))
            .build()
            .unwrap()
    }

    /// Runs the plugin once, `via` the CLI or the host.
    fn run(&self, via: Via, args: &[&str]) -> Ran {
        match via {
            Via::Run => {
                let out = self.warden_run(&["--json"], args, &[]);
                let printed = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|e| panic!("{e}: {printed}"));
                assert_eq!(
                    v["exit_code"].as_i64(),
                    out.status.code().map(i64::from),
                    "{printed}"
                );
                Ran {
                    exit_code: out.status.code().unwrap_or(-1),
                    outcome: v["outcome"].as_str().unwrap().to_owned(),
                    output: v["output"].as_str().unwrap_or_default().to_owned(),
                    printed,
                }
            }
            Via::Host => {
                let warden = self.host();
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                let ran = host_call(&loaded(&warden, self), &args);
                warden.flush().unwrap();
                ran
            }
        }
    }

    fn records(&self, event: &str) -> Vec<serde_json::Value> {
        log_records(&self.log())
            .into_iter()
            .filter(|r| r["event"] == event)
            .collect()
    }

    /// The newest `event` record.
    fn last(&self, event: &str) -> serde_json::Value {
        self.records(event)
            .pop()
            .unwrap_or_else(|| panic!("no {event}"))
    }

    /// The chain verifies, and every `run_start` has exactly one `run_end`, after it,
    /// under its `run_id`.
    fn assert_log_complete(&self) {
        let records = log_records(&self.log());
        let mut open: HashMap<String, usize> = HashMap::new();
        let mut ends: HashMap<String, usize> = HashMap::new();
        for (n, r) in records.iter().enumerate() {
            let id = r["run_id"].as_str().unwrap().to_owned();
            match r["event"].as_str().unwrap() {
                "run_start" => assert!(open.insert(id, n).is_none(), "two run_starts: {r}"),
                "run_end" => {
                    open.remove(&id);
                    *ends.entry(id).or_default() += 1;
                }
                _ => {}
            }
        }
        assert!(open.is_empty(), "run_start without run_end: {open:?}");
        assert!(ends.values().all(|&n| n == 1), "two run_ends: {ends:?}");
        assert_log_verifies(&self.log());
    }
}

fn loaded(warden: &Warden, site: &Site) -> warden::host::Plugin {
    match warden.load(site.path("plugin.wasm")).unwrap() {
        Loaded::Ready(plugin) => plugin,
        Loaded::Refused(r) => panic!("refused: {}", r.reason()),
    }
}

fn host_call(plugin: &warden::host::Plugin, args: &[String]) -> Ran {
    let report = plugin.run(args).unwrap();
    let (outcome, output) = match &report.result {
        Ok(ExecuteResult::Success(text)) => ("success".to_owned(), text.clone()),
        Ok(other) => (format!("{other:?}"), String::new()),
        Err(e) => (e.outcome().to_owned(), e.to_string()),
    };
    Ran {
        exit_code: i32::from(report.exit_code()),
        outcome,
        output,
        printed: String::new(),
    }
}

fn policy(isolation: &str, extra: &str) -> String {
    format!(
        "version = 1\n[plugins.esc]\nisolation = \"{isolation}\"\nfs.read = [\"./data\"]\nfs.write = [\"./out\"]\n{extra}"
    )
}

#[test]
fn an_escape_cannot_read_a_canary_in_home_outside_the_grants() {
    for via in BOTH {
        let probe = |site: &Site| {
            escape_plugin(
                data_and_out(),
                &[
                    Step::Open(site.path("home/canary"), false),
                    Step::Open(site.path("data/hello.txt"), false),
                ],
            )
        };
        let site = Site::new(&policy("process", ""), &[]);
        std::fs::write(site.path("plugin.wasm"), probe(&site)).unwrap();
        let ran = site.run(via, &[]);
        // Landlock refuses the canary; the granted file opens natively (the rules are
        // per grant, not "nothing at all").
        assert_eq!(ran.numbers(), [i64::from(EACCES), 0], "{via:?}");
        assert_eq!(ran.exit_code, 0);
        assert!(!ran.printed.contains(CANARY), "{via:?}: {ran:?}");
        assert_eq!(
            site.last("run_start")["confinement"]["isolation"],
            "process"
        );
        site.assert_log_complete();

        // The same plugin in warden's own process: the user may read the canary, so
        // the plugin can. The worker's wall is what stopped it.
        site.set_policy(&policy("in-process", ""));
        let ran = site.run(via, &[]);
        assert_eq!(ran.numbers(), [0, 0], "{via:?}");
        assert_eq!(
            site.last("run_start")["confinement"]["isolation"],
            "in-process"
        );
        site.assert_log_complete();
    }
}

/// The manifest is guest code too: under `isolation = "process"` it runs in a worker
/// of its own, confined with no grant. A plugin whose `plugin_manifest` creates a
/// file in `$HOME` natively leaves nothing there, and loads and runs as usual; in
/// warden's own process the same call creates the file.
#[test]
fn an_escape_in_the_manifest_call_is_confined_too() {
    for via in BOTH {
        let site = Site::new(&policy("process", ""), &[]);
        let marker = site.path("home/written-by-the-manifest");
        std::fs::write(site.path("plugin.wasm"), manifest_escape(&marker)).unwrap();
        let ran = site.run(via, &[]);
        assert_eq!(
            (ran.exit_code, ran.output.as_str()),
            (0, "ok"),
            "{via:?}: {ran:?}"
        );
        assert!(!marker.exists(), "{via:?}: the manifest call escaped");
        site.assert_log_complete();

        // Every plugin in warden's own process, the manifest call too: it can write
        // where the user can. (Without the cache, which keeps the manifest read
        // above: a cached manifest is not read again.)
        std::fs::remove_dir_all(site.path("cache")).unwrap();
        site.set_policy(
            "version = 1\n[defaults]\nisolation = \"in-process\"\n[plugins.esc]\nfs.read = [\"./data\"]\nfs.write = [\"./out\"]\n",
        );
        let ran = site.run(via, &[]);
        assert_eq!(
            (ran.exit_code, ran.output.as_str()),
            (0, "ok"),
            "{via:?}: {ran:?}"
        );
        assert!(
            marker.exists(),
            "{via:?}: in-process, the manifest call can write"
        );
        std::fs::remove_file(&marker).unwrap();
        site.assert_log_complete();
    }
}

/// A plugin named `esc` whose `plugin_manifest` first creates `marker` natively (the
/// escape simulator's `open` for writing), then returns its manifest.
fn manifest_escape(marker: &Path) -> Vec<u8> {
    let mut p = WatPlugin::new("esc");
    p.manifest = manifest_bytes_with("esc", 2, data_and_out());
    p.imports =
        r#"(import "warden_escape" "open" (func $open (param i32 i32 i32) (result i32)))"#.into();
    let path = marker.to_str().unwrap().as_bytes();
    p.extra = format!(r#"(data (i32.const {STRINGS_AT}) "{}")"#, wat_bytes(path));
    p.manifest_fn = Some(format!(
        "(drop (call $open (i32.const {STRINGS_AT}) (i32.const {}) (i32.const 1))) {}",
        path.len(),
        WatPlugin::packed(MANIFEST_AT, p.manifest.len() as u32)
    ));
    p.bytes()
}

#[test]
fn an_escape_cannot_write_inside_a_read_only_grant() {
    for via in BOTH {
        let site = Site::new(&policy("process", ""), &[]);
        let wasm = escape_plugin(
            data_and_out(),
            &[
                Step::Open(site.path("data/new.txt"), true),
                Step::Open(site.path("data/hello.txt"), true),
                Step::Open(site.path("data/hello.txt"), false),
                Step::Open(site.path("out/made.txt"), true),
                Step::Open(site.path("made-beside.txt"), true),
            ],
        );
        std::fs::write(site.path("plugin.wasm"), wasm).unwrap();
        let ran = site.run(via, &[]);
        // No creating or writing in the read-only grant, reading it is fine, creating
        // in the read-write grant is fine, and beside the grants nothing.
        assert_eq!(
            ran.numbers(),
            [
                i64::from(EACCES),
                i64::from(EACCES),
                0,
                0,
                i64::from(EACCES)
            ],
            "{via:?}"
        );
        assert!(!site.path("data/new.txt").exists(), "{via:?}");
        assert!(!site.path("made-beside.txt").exists(), "{via:?}");
        assert_eq!(
            std::fs::read_to_string(site.path("data/hello.txt")).unwrap(),
            "greetings"
        );
        assert!(site.path("out/made.txt").is_file(), "{via:?}");
        site.assert_log_complete();
    }
}

#[test]
fn an_escape_cannot_exec_a_shell() {
    for via in BOTH {
        let site = Site::new(
            &policy("process", ""),
            &escape_plugin(
                data_and_out(),
                &[Step::Exec("/bin/sh"), Step::Exec("/bin/true")],
            ),
        );
        let ran = site.run(via, &[]);
        // The syscall filter refuses `execve` before the kernel looks at the file.
        assert_eq!(
            ran.numbers(),
            [i64::from(EPERM), i64::from(EPERM)],
            "{via:?}"
        );
        site.assert_log_complete();

        // In warden's own process both start (and are killed at once).
        site.set_policy(&policy("in-process", ""));
        let ran = site.run(via, &[]);
        assert_eq!(ran.numbers(), [0, 0], "{via:?}");
        site.assert_log_complete();
    }
}

#[test]
fn an_escape_cannot_connect_to_a_loopback_server() {
    for via in BOTH {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let port = server.local_addr().unwrap().port();
        let site = Site::new(
            &policy("process", ""),
            &escape_plugin(data_and_out(), &[Step::Connect("127.0.0.1", port)]),
        );
        let ran = site.run(via, &[]);
        // No new socket at all: the filter refuses `socket` (EPERM; Landlock's TCP
        // rule, behind it, would say EACCES at `connect`).
        assert_eq!(ran.numbers(), [i64::from(EPERM)], "{via:?}");
        match server.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("{via:?}: the server saw a connection: {other:?}"),
        }
        site.assert_log_complete();

        // In warden's own process the same plugin connects: the server works.
        site.set_policy(&policy("in-process", ""));
        let ran = site.run(via, &[]);
        assert_eq!(ran.numbers(), [0], "{via:?}");
        server.set_nonblocking(false).unwrap();
        assert!(server.accept().is_ok(), "{via:?}");
        site.assert_log_complete();
    }
}

#[test]
fn an_escape_cannot_write_to_the_audit_log() {
    for via in BOTH {
        let marker = format!(
            "ESCAPED-INTO-THE-LOG-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let site = Site::new(
            &policy("process", "timeout = \"5s\"\n"),
            &escape_plugin(data_and_out(), &[Step::WriteEveryFd(marker.clone())]),
        );
        // A first run, so that the log exists and is open in the host's process.
        let first = site.run(via, &[]);
        let second = site.run(via, &[]);
        for ran in [&first, &second] {
            // Junk on the worker's channel kills the worker; a worker that reports
            // wrote only to its own descriptors (/dev/null, the channel, the grants).
            assert!(
                matches!(ran.outcome.as_str(), "success" | "worker_died"),
                "{via:?}: {ran:?}"
            );
            assert!(!ran.printed.contains(&marker), "{via:?}: {ran:?}");
            assert!(!ran.output.contains(&marker), "{via:?}: {ran:?}");
        }
        let log = std::fs::read_to_string(site.log()).unwrap();
        assert!(
            !log.contains(&marker),
            "{via:?}: the marker reached the log"
        );
        assert_eq!(site.records("run_start").len(), 2, "{via:?}");
        site.assert_log_complete();
        for sub in ["data", "out", "home"] {
            for entry in std::fs::read_dir(site.path(sub)).unwrap() {
                let text = std::fs::read(entry.unwrap().path()).unwrap();
                assert!(!String::from_utf8_lossy(&text).contains(&marker));
            }
        }
    }

    // In warden's own process (`warden run` only: through the host that would be this
    // test process's descriptors) the same plugin writes into the open log and onto
    // warden's output: the worker is what keeps the log out of reach.
    let marker = format!("ESCAPED-IN-PROCESS-{}", std::process::id());
    let site = Site::new(
        &policy("in-process", ""),
        &escape_plugin(data_and_out(), &[Step::WriteEveryFd(marker.clone())]),
    );
    let out = site.warden_run(&["--json"], &[], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&marker));
    let log = std::fs::read_to_string(site.log()).unwrap();
    assert!(log.contains(&marker), "{log}");
}

#[test]
fn an_escape_cannot_signal_trace_or_read_the_parent() {
    for via in BOTH {
        // Through the host the parent is this test process: a signal that would do
        // no harm if it got through (the errno says whether it did).
        let signal = match via {
            Via::Run => libc::SIGTERM,
            Via::Host => libc::SIGURG,
        };
        let site = Site::new(
            &policy("process", ""),
            &escape_plugin(
                data_and_out(),
                &[
                    Step::ParentPid,
                    Step::KillParent(signal),
                    Step::PtraceParent,
                    Step::OpenParentEnviron,
                ],
            ),
        );
        let ran = site.run(via, &[]);
        let numbers = ran.numbers();
        assert_eq!(
            numbers[1..],
            [i64::from(EPERM), i64::from(EPERM), i64::from(EACCES)],
            "{via:?}"
        );
        // The parent: the `warden run` that wrote the answer, or this process.
        match via {
            Via::Run => {
                let end = site.last("run_end");
                assert_eq!(end["outcome"], "success", "the parent lived: {end}");
                assert_ne!(numbers[0], i64::from(std::process::id()));
            }
            Via::Host => assert_eq!(numbers[0], i64::from(std::process::id())),
        }
        assert_eq!(ran.exit_code, 0);
        site.assert_log_complete();
    }
}

/// A FIFO in `pipes/`, and a guard that opens it for writing (releasing a plugin
/// stuck opening it) if the run under test has not returned within a minute, so a
/// broken wall fails the test instead of hanging it.
struct Fifo {
    path: PathBuf,
    done: Option<mpsc::Sender<()>>,
    guard: Option<std::thread::JoinHandle<bool>>,
}

impl Fifo {
    fn new(site: &Site) -> Fifo {
        std::fs::create_dir(site.path("pipes")).unwrap();
        let path = site.path("pipes/fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (done, wait) = mpsc::channel::<()>();
        let fifo = path.clone();
        let guard = std::thread::spawn(move || {
            if wait.recv_timeout(Duration::from_secs(60)).is_ok() {
                return false;
            }
            let _ = open_writer(&fifo);
            true
        });
        Fifo {
            path,
            done: Some(done),
            guard: Some(guard),
        }
    }

    /// The run returned; whether the guard had to release it.
    fn released(&mut self) -> bool {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        self.guard.take().is_some_and(|g| g.join().unwrap())
    }
}

/// Opens `fifo` for writing without blocking: `ENXIO` when nothing has it open for
/// reading (or waits in `open` to).
fn open_writer(fifo: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
}

#[test]
fn a_worker_stuck_past_its_deadline_is_killed() {
    for via in BOTH {
        let caps = Capabilities {
            fs_read: vec![dir("./pipes")],
            ..Capabilities::default()
        };
        let site = Site::new(
            "version = 1\n[plugins.esc]\nisolation = \"process\"\ntimeout = \"300ms\"\nfs.read = [\"./pipes\"]\n",
            &escape_plugin(caps, &[Step::WasiOpen("fifo")]),
        );
        let mut fifo = Fifo::new(&site);
        // With no writer, the worker's `open` of the FIFO blocks in the kernel, where
        // no epoch deadline reaches it: the parent kills it.
        let ran = site.run(via, &[]);
        assert!(
            !fifo.released(),
            "{via:?}: the run hung until released: {ran:?}"
        );
        assert_eq!(ran.exit_code, 124, "{via:?}: {ran:?}");
        assert_eq!(ran.outcome, "limit", "{via:?}: {ran:?}");
        // Nothing waits on the FIFO any more: the worker is gone, not left behind.
        match open_writer(&fifo.path) {
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            other => panic!("{via:?}: something still reads the FIFO: {other:?}"),
        }
        let limit = site.last("limit_exceeded");
        assert_eq!(limit["limit"], "timeout", "{limit}");
        assert_eq!(limit["value"], 300, "{limit}");
        let end = site.last("run_end");
        assert_eq!(end["outcome"], "limit", "{end}");
        assert_eq!(end["exit_code"], 124, "{end}");
        site.assert_log_complete();
    }
}

#[test]
fn a_worker_that_crashes_is_recorded_and_replaced() {
    let wasm = escape_plugin(data_and_out(), &[Step::AbortWhenGivenArgs, Step::ParentPid]);
    // `warden run`: the crash is the run's end.
    let site = Site::new(&policy("process", ""), &wasm);
    let ran = site.run(Via::Run, &["crash"]);
    assert_eq!(ran.exit_code, 70, "{ran:?}");
    assert_eq!(ran.outcome, "worker_died", "{ran:?}");
    let end = site.last("run_end");
    assert_eq!(end["outcome"], "worker_died", "{end}");
    assert_eq!(end["signal"], libc::SIGABRT, "{end}");
    assert_eq!(end["exit_code"], 70, "{end}");
    site.assert_log_complete();

    // The host: the crash ends that call, and the next call of the same loaded plugin
    // runs in a new worker.
    let site = Site::new(&policy("process", ""), &wasm);
    let warden = site.host();
    let plugin = loaded(&warden, &site);
    let crashed = host_call(&plugin, &["crash".to_owned()]);
    assert_eq!(crashed.exit_code, 70, "{crashed:?}");
    assert_eq!(crashed.outcome, "worker_died", "{crashed:?}");
    let report = plugin.run(&["crash".to_owned()]).unwrap();
    assert_eq!(
        report.result.unwrap_err().worker_signal(),
        Some(libc::SIGABRT)
    );
    let next = host_call(&plugin, &[]);
    assert_eq!(next.numbers(), [i64::from(std::process::id())], "{next:?}");
    warden.flush().unwrap();
    drop(plugin);
    drop(warden);
    let ends = site.records("run_end");
    let outcomes: Vec<_> = ends
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["worker_died", "worker_died", "success"]);
    assert_eq!(ends[0]["signal"], libc::SIGABRT);
    site.assert_log_complete();
}

#[test]
fn confine_required_refuses_where_the_kernel_cannot_enforce() {
    for (extra_defaults, extra_plugin, rule) in [
        ("", "confine = \"required\"\n", "plugins.esc.confine"),
        (
            "[defaults]\nconfine = \"required\"\n",
            "",
            "defaults.confine",
        ),
    ] {
        let text = format!(
            "version = 1\n{extra_defaults}{}",
            policy("process", extra_plugin).trim_start_matches("version = 1\n")
        );
        let site = Site::new(&text, &[]);
        let made = site.path("out/made.txt");
        std::fs::write(
            site.path("plugin.wasm"),
            escape_plugin(data_and_out(), &[Step::Open(made.clone(), true)]),
        )
        .unwrap();
        // A kernel without Landlock (simulated): refused before any guest code runs.
        let out = site.warden_run(&[], &[], &[("WARDEN_TEST_NO_LANDLOCK", "1")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(77), "{rule}: {err}");
        assert!(
            err.contains(&format!("`{rule}` requires it")),
            "{rule}: {err}"
        );
        assert!(err.contains("refused to run plugin `esc`"), "{err}");
        assert!(!made.exists(), "{rule}: the plugin ran");
        let end = site.last("run_end");
        assert_eq!(end["outcome"], "refused", "{end}");
        assert_eq!(end["exit_code"], 77, "{end}");
        site.assert_log_complete();

        // The same policy on this kernel runs.
        let out = site.warden_run(&[], &[], &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
        assert!(made.is_file());
        site.assert_log_complete();
    }
}

#[test]
fn run_start_records_the_confinement_on_this_machine() {
    let kernel_has_landlock = Path::new("/sys/kernel/security/landlock").exists();
    for via in BOTH {
        let site = Site::new(
            &policy("process", ""),
            &escape_plugin(data_and_out(), &[Step::ParentPid]),
        );
        assert_eq!(site.run(via, &[]).exit_code, 0);
        let c = site.last("run_start")["confinement"].clone();
        assert_eq!(c["isolation"], "process", "{c}");
        if kernel_has_landlock {
            assert!(c["landlock_abi"].as_u64().unwrap() >= 1, "{c}");
            for area in ["fs", "net", "syscalls"] {
                assert_eq!(c[area]["status"], "enforced", "{area}: {c}");
                assert!(c[area].get("reason").is_none(), "{area}: {c}");
            }
        } else {
            eprintln!(
                "note: this kernel has no Landlock (/sys/kernel/security/landlock is absent): \
                 the filesystem and network rules are not asserted"
            );
            assert_eq!(c["syscalls"]["status"], "enforced", "{c}");
        }
        site.assert_log_complete();

        site.set_policy(&policy("in-process", ""));
        assert_eq!(site.run(via, &[]).exit_code, 0);
        let c = site.last("run_start")["confinement"].clone();
        assert_eq!(c["isolation"], "in-process", "{c}");
        assert_eq!(c["landlock_abi"], 0, "{c}");
        for area in ["fs", "net", "syscalls"] {
            assert_eq!(c[area]["status"], "off", "{area}: {c}");
        }
        site.assert_log_complete();
    }
}
