//! WASI calls that wait end at the call's wall-clock limit: `poll_oneoff` sleeps
//! (relative, absolute, realtime, several subscriptions), a granted stdin nobody
//! writes to, in `plugin_execute`, `_initialize`, a start function and
//! `plugin_manifest`; a wait that fits still gets its event.
//!
//! Every blocking part runs under a hang guard ([`bounded`], [`wait_bounded`]) so
//! that a regression fails the test instead of hanging CI.

use crate::cli::warden_command;
use crate::common::*;
use crate::policy::policy_file;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};
use warden::abi::{Capabilities, ExecuteResult, StdioCapability};
use warden::runtime::{GuestCall, RuntimeError, RuntimeErrorKind};
use warden::{LimitKind, Limits, Loader};

/// Longest any one case may take before it counts as hung. Far above the 1 s limits
/// used here: only a wait that ignores the limit gets near it.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// One hour, in nanoseconds.
const HOUR_NS: u64 = 3_600_000_000_000;

/// Preview-1 clock ids and subscription flags.
const REALTIME: u32 = 0;
pub(crate) const MONOTONIC: u32 = 1;
const ABSTIME: u16 = 1;

/// Where the fixtures keep subscriptions, events and the event count (below the
/// bump allocator at 128 KiB, above the result data at 64 KiB).
const SUBS_AT: u32 = 96 * 1024;
const EVENTS_AT: u32 = 100 * 1024;
const NEVENTS_AT: u32 = 104 * 1024;
const SCRATCH_AT: u32 = 104 * 1024 + 64;

/// Runs `f` on its own thread and fails if it does not return within [`HANG_GUARD`].
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, recv) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    match recv.recv_timeout(HANG_GUARD) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not end within {HANG_GUARD:?}: a wait outlived the limit")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{what} panicked (see above)")
        }
    }
}

/// Waits for `child`, killing it and failing if it runs past [`HANG_GUARD`].
fn wait_bounded(mut child: Child, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {HANG_GUARD:?}: a wait outlived the limit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A preview-1 clock subscription (48 bytes): userdata u64 at 0, tag 0 at 8, clock id
/// u32 at 16, timeout u64 at 24, precision u64 at 32, flags u16 at 40.
pub(crate) fn clock_sub(userdata: u64, clock: u32, timeout: u64, flags: u16) -> Vec<u8> {
    let mut sub = vec![0u8; 48];
    sub[0..8].copy_from_slice(&userdata.to_le_bytes());
    sub[16..20].copy_from_slice(&clock.to_le_bytes());
    sub[24..32].copy_from_slice(&timeout.to_le_bytes());
    sub[40..42].copy_from_slice(&flags.to_le_bytes());
    sub
}

pub(crate) const POLL_IMPORT: &str = r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))"#;

/// WAT that polls the subscriptions at [`SUBS_AT`] and traps unless the poll
/// succeeded with at least one event whose userdata is `expect` and whose type is
/// the clock.
fn poll_and_check(count: usize, expect: u64) -> String {
    format!(
        "(if (call $poll (i32.const {SUBS_AT}) (i32.const {EVENTS_AT}) (i32.const {count}) (i32.const {NEVENTS_AT})) \
           (then unreachable)) \
         (if (i32.eqz (i32.load (i32.const {NEVENTS_AT}))) (then unreachable)) \
         (if (i64.ne (i64.load (i32.const {EVENTS_AT})) (i64.const {expect})) (then unreachable)) \
         (if (i32.load16_u (i32.const {})) (then unreachable)) \
         (if (i32.load8_u (i32.const {})) (then unreachable))",
        EVENTS_AT + 8,
        EVENTS_AT + 10,
    )
}

/// A plugin whose `plugin_execute` polls `subs` (checking for an event of userdata
/// 1) and then answers `Success("ok")`.
pub(crate) fn polling_plugin(name: &str, subs: &[Vec<u8>]) -> WatPlugin {
    let mut p = WatPlugin::new(name);
    p.imports = POLL_IMPORT.into();
    p.extra = format!(
        r#"(data (i32.const {SUBS_AT}) "{}")"#,
        wat_bytes(&subs.concat())
    );
    p.execute_fn = Some(format!(
        "{} {}",
        poll_and_check(subs.len(), 1),
        WatPlugin::packed(RESULT_AT, p.result.len() as u32)
    ));
    p
}

fn one_second() -> Loader {
    loader_with(Limits {
        timeout: Duration::from_secs(1),
        ..Limits::default()
    })
}

fn timeout_1s() -> RuntimeErrorKind {
    RuntimeErrorKind::Limit {
        limit: LimitKind::Timeout,
        value: 1000,
    }
}

/// Loads `plugin` under a 1 s limit and runs it, bounded; the error and the time
/// the run took.
fn run_1s(plugin: &WatPlugin) -> (Result<ExecuteResult, RuntimeError>, Duration) {
    let bytes = plugin.bytes();
    bounded("the run", move || {
        let loaded = one_second().load(&bytes).expect("the plugin loads");
        let started = Instant::now();
        let result = loaded.instance.execute(&[]);
        (result, started.elapsed())
    })
}

fn assert_timed_out(plugin: &WatPlugin, call: GuestCall) {
    let (result, took) = run_1s(plugin);
    let err = result.expect_err("a wait past the limit must end the call");
    assert_eq!(err.kind, timeout_1s(), "{err}");
    assert_eq!(err.call, Some(call), "{err}");
    assert_eq!(err.exit_code(), 124);
    assert_eq!(err.outcome(), "limit");
    // It waited up to the deadline, not past it by much (the hang guard is the bound).
    assert!(took >= Duration::from_millis(900), "ended early: {took:?}");
}

#[test]
fn a_one_hour_relative_sleep_ends_at_the_timeout() {
    let p = polling_plugin("sleeper", &[clock_sub(1, MONOTONIC, HOUR_NS, 0)]);
    assert_timed_out(&p, GuestCall::Execute);
    // A relative realtime clock takes the same `std::thread::sleep` path.
    let p = polling_plugin("sleeper", &[clock_sub(1, REALTIME, u64::MAX, 0)]);
    assert_timed_out(&p, GuestCall::Execute);
}

#[test]
fn absolute_clocks_and_several_subscriptions_end_at_the_timeout() {
    for (what, subs) in [
        (
            "absolute monotonic",
            vec![clock_sub(1, MONOTONIC, u64::MAX, ABSTIME)],
        ),
        (
            "absolute realtime",
            vec![clock_sub(1, REALTIME, u64::MAX, ABSTIME)],
        ),
        (
            "two relative clocks",
            vec![
                clock_sub(1, MONOTONIC, HOUR_NS, 0),
                clock_sub(2, MONOTONIC, 2 * HOUR_NS, 0),
            ],
        ),
        (
            "relative and absolute",
            vec![
                clock_sub(1, REALTIME, HOUR_NS, 0),
                clock_sub(2, MONOTONIC, u64::MAX, ABSTIME),
            ],
        ),
    ] {
        eprintln!("case: {what}");
        assert_timed_out(&polling_plugin("sleeper", &subs), GuestCall::Execute);
    }
}

#[test]
fn a_sleep_that_fits_in_the_limit_gets_its_event() {
    for (what, subs) in [
        (
            "one relative 10 ms",
            vec![clock_sub(1, MONOTONIC, 10_000_000, 0)],
        ),
        (
            "10 ms beside an hour",
            vec![
                clock_sub(2, MONOTONIC, HOUR_NS, 0),
                clock_sub(1, MONOTONIC, 10_000_000, 0),
            ],
        ),
        (
            "absolute, already past",
            vec![clock_sub(1, MONOTONIC, 0, ABSTIME)],
        ),
        ("zero", vec![clock_sub(1, MONOTONIC, 0, 0)]),
    ] {
        let (result, _) = run_1s(&polling_plugin("napper", &subs));
        assert_eq!(result, Ok(ExecuteResult::Success("ok".into())), "{what}");
    }
}

#[test]
fn an_absolute_sleep_10_ms_ahead_gets_its_event() {
    // Reads the monotonic clock, subscribes to it 10 ms later, polls.
    let mut p = polling_plugin("napper", &[clock_sub(1, MONOTONIC, 0, ABSTIME)]);
    p.imports.push_str(
        r#"(import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))"#,
    );
    let body = p.execute_fn.take().unwrap();
    p.execute_fn = Some(format!(
        "(if (call $now (i32.const {MONOTONIC}) (i64.const 1) (i32.const {SCRATCH_AT})) (then unreachable)) \
         (i64.store (i32.const {}) (i64.add (i64.load (i32.const {SCRATCH_AT})) (i64.const 10000000))) {body}",
        SUBS_AT + 24
    ));
    let (result, took) = run_1s(&p);
    assert_eq!(result, Ok(ExecuteResult::Success("ok".into())));
    assert!(took >= Duration::from_millis(10), "{took:?}");
}

/// A plugin whose `_initialize` (or start function, or `plugin_manifest`) sleeps an
/// hour.
fn sleeping_at_load(place: &str) -> WatPlugin {
    let mut p = WatPlugin::new("slow-start");
    p.imports = POLL_IMPORT.into();
    let sub = wat_bytes(&clock_sub(1, MONOTONIC, HOUR_NS, 0));
    let sleep = format!(
        "(drop (call $poll (i32.const {SUBS_AT}) (i32.const {EVENTS_AT}) (i32.const 1) (i32.const {NEVENTS_AT})))"
    );
    p.extra = format!(r#"(data (i32.const {SUBS_AT}) "{sub}")"#);
    match place {
        "_initialize" => p
            .extra
            .push_str(&format!(r#"(func (export "_initialize") {sleep})"#)),
        "start" => p
            .extra
            .push_str(&format!("(func $start {sleep}) (start $start)")),
        "plugin_manifest" => {
            p.manifest_fn = Some(format!(
                "{sleep} {}",
                WatPlugin::packed(MANIFEST_AT, p.manifest.len() as u32)
            ));
        }
        _ => unreachable!(),
    }
    p
}

#[test]
fn a_load_that_sleeps_an_hour_ends_at_the_timeout() {
    for (place, call) in [
        ("_initialize", GuestCall::Initialize),
        ("start", GuestCall::Instantiate),
        ("plugin_manifest", GuestCall::Manifest),
    ] {
        let bytes = sleeping_at_load(place).bytes();
        let err = bounded("the load", move || {
            one_second()
                .load(&bytes)
                .expect_err("a load past the limit must fail")
        });
        assert_eq!(err.kind, timeout_1s(), "{place}: {err}");
        assert_eq!(err.call, Some(call), "{place}: {err}");
        assert_eq!(err.exit_code(), 124);
    }
}

/// `warden run --policy POLICY --workdir DIR --audit-log LOG PLUGIN`, with stdin piped.
fn spawn_run(dir: &Path, policy: &Path, plugin: &Path) -> Child {
    warden_command()
        .arg("run")
        .arg("--policy")
        .arg(policy)
        .arg("--workdir")
        .arg(dir)
        .arg("--audit-log")
        .arg(dir.join("audit.jsonl"))
        .arg(plugin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Asserts that the run in `dir`'s audit log ended on the 1 s timeout and that the
/// log verifies.
fn assert_audited_timeout(dir: &Path, out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = dir.join("audit.jsonl");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events[events.len() - 3..],
        ["run_start", "limit_exceeded", "run_end"],
        "{events:?}"
    );
    let n = records.len();
    assert_eq!(records[n - 2]["limit"], "timeout");
    assert_eq!(records[n - 2]["value"], 1000);
    assert_eq!(records[n - 1]["outcome"], "limit");
    assert_eq!(records[n - 1]["exit_code"], 124);
    let verify = warden_command()
        .args(["audit", "verify", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("ok: "));
}

#[test]
fn warden_run_of_an_hour_long_sleep_exits_124_with_the_limit_audited() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("sleeper.wasm");
    let p = polling_plugin("sleeper", &[clock_sub(1, MONOTONIC, HOUR_NS, 0)]);
    std::fs::write(&plugin, p.bytes()).unwrap();
    let policy = policy_file(
        dir.path(),
        "p.toml",
        "version = 1\n[defaults]\ntimeout = \"1s\"\n",
    );
    let out = wait_bounded(spawn_run(dir.path(), &policy, &plugin), "warden run");
    assert_audited_timeout(dir.path(), &out);
}

#[test]
fn warden_run_reading_a_silent_stdin_exits_124_with_the_limit_audited() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("reader.wasm");
    let mut p = WatPlugin::new("stdin-reader");
    p.manifest = manifest_bytes_with(
        "stdin-reader",
        2,
        Capabilities {
            stdio: StdioCapability {
                stdin: true,
                ..StdioCapability::default()
            },
            ..Capabilities::default()
        },
    );
    p.imports = r#"(import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))"#.into();
    // One iovec of 16 bytes at SCRATCH_AT + 16; read until EOF (0 bytes) or an error.
    p.execute_fn = Some(format!(
        "(i32.store (i32.const {SCRATCH_AT}) (i32.const {buf})) \
         (i32.store (i32.const {len_at}) (i32.const 16)) \
         (block $done (loop $more \
           (br_if $done (call $read (i32.const 0) (i32.const {SCRATCH_AT}) (i32.const 1) (i32.const {NEVENTS_AT}))) \
           (br_if $more (i32.load (i32.const {NEVENTS_AT}))))) \
         {}",
        WatPlugin::packed(RESULT_AT, p.result.len() as u32),
        buf = SCRATCH_AT + 16,
        len_at = SCRATCH_AT + 4,
    ));
    std::fs::write(&plugin, p.bytes()).unwrap();
    let policy = policy_file(
        dir.path(),
        "p.toml",
        "version = 1\n[defaults]\ntimeout = \"1s\"\n[plugins.stdin-reader]\nstdio = [\"stdin\"]\n",
    );
    // Closed at once: the plugin reads to EOF and succeeds.
    let mut child = spawn_run(dir.path(), &policy, &plugin);
    drop(child.stdin.take());
    let out = wait_bounded(child, "warden run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Held open and silent: the read waits, and ends at the limit.
    let mut child = spawn_run(dir.path(), &policy, &plugin);
    let stdin = child.stdin.take();
    let out = wait_bounded(child, "warden run");
    drop(stdin);
    assert_audited_timeout(dir.path(), &out);
}

#[test]
fn warden_inspect_of_a_plugin_whose_initialize_sleeps_exits_124() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("slow.wasm");
    std::fs::write(&plugin, sleeping_at_load("_initialize").bytes()).unwrap();
    // `inspect` runs under the default limits (5 s).
    let child = warden_command()
        .arg("inspect")
        .arg(&plugin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, "warden inspect");
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timeout"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
