//! Under load: a host runs at most `max_concurrent_calls` calls at once. Calls beyond
//! that wait for a slot, first come first served, within their own timeout; a call
//! whose deadline passes while it waits ends as a `concurrency` limit, never as a
//! trap of the plugin's, and the log keeps exactly one `run_end` per run.

use crate::blocking::{MONOTONIC, clock_sub, polling_plugin};
use crate::common::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use warden::host::{Loaded, Plugin, Warden};
use warden::runtime::{RunReport, RuntimeErrorKind};

/// A plugin whose call waits `ms` milliseconds (a WASI `poll_oneoff` clock), then
/// answers `Success("ok")`.
fn sleeper(ms: u64) -> Vec<u8> {
    polling_plugin("sleeper", &[clock_sub(1, MONOTONIC, ms * 1_000_000, 0)]).bytes()
}

/// A host in `dir` for the sleeper, under `isolation` with `timeout`, running at most
/// `slots` calls at once, auditing to `dir/audit.jsonl`.
fn sleeper_host(
    dir: &Path,
    isolation: &str,
    timeout: &str,
    sleep_ms: u64,
    slots: u32,
) -> (Warden, Plugin) {
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!("version = 1\n[defaults]\nisolation = \"{isolation}\"\n[plugins.sleeper]\ntimeout = \"{timeout}\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join("sleeper.wasm"), sleeper(sleep_ms)).unwrap();
    let warden = Warden::builder()
        .worker_program(env!("CARGO_BIN_EXE_warden"))
        .policy_file(&policy)
        .audit_log(dir.join("audit.jsonl"))
        .workdir(dir)
        .without_cache()
        .max_concurrent_calls(slots)
        .build()
        .unwrap();
    let Loaded::Ready(plugin) = warden.load(dir.join("sleeper.wasm")).unwrap() else {
        panic!("the sleeper is refused")
    };
    (warden, plugin)
}

/// Runs `threads` calls at once, one a thread.
fn call_at_once(plugin: &Plugin, threads: usize) -> Vec<RunReport> {
    let start = Arc::new(std::sync::Barrier::new(threads));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let start = Arc::clone(&start);
                s.spawn(move || {
                    start.wait();
                    plugin.run(&[]).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The log verifies, every run has exactly one `run_end`, and the `run_end`
/// outcomes are counted.
fn closed_runs(dir: &Path, runs: usize) -> HashMap<String, usize> {
    let log = dir.join("audit.jsonl");
    assert_log_verifies(&log);
    let records = log_records(&log);
    let starts: Vec<&str> = records
        .iter()
        .filter(|r| r["event"] == "run_start")
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(starts.len(), runs);
    let mut outcomes = HashMap::new();
    for id in starts {
        let ends: Vec<_> = records
            .iter()
            .filter(|r| r["event"] == "run_end" && r["run_id"] == id)
            .collect();
        assert_eq!(ends.len(), 1, "run {id}: {ends:?}");
        *outcomes
            .entry(ends[0]["outcome"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    outcomes
}

#[test]
fn every_waiting_call_completes_when_a_slot_frees_in_time() {
    // 256 calls of 200 ms on the default 64 slots: four rounds, well within 1 s.
    let dir = tempfile::tempdir().unwrap();
    let (warden, plugin) = sleeper_host(dir.path(), "in-process", "1s", 200, 64);
    let reports = call_at_once(&plugin, 256);
    for report in &reports {
        assert_eq!(report.exit_code(), 0, "{:?}", report.result);
    }
    warden.flush().unwrap();
    let outcomes = closed_runs(dir.path(), 256);
    assert_eq!(outcomes.get("success"), Some(&256), "{outcomes:?}");
}

#[test]
fn calls_that_cannot_get_a_slot_in_time_end_as_concurrency_limits_not_traps() {
    // 16 slots, 256 calls that would wait 200 ms under a 100 ms timeout: the calls
    // that run are cut at their deadline; the others never get a slot in time.
    let dir = tempfile::tempdir().unwrap();
    let (warden, plugin) = sleeper_host(dir.path(), "in-process", "100ms", 200, 16);
    let reports = call_at_once(&plugin, 256);
    let mut busy = 0;
    let mut timed_out = 0;
    for report in &reports {
        let error = report.result.as_ref().unwrap_err();
        match &error.kind {
            RuntimeErrorKind::Busy { slots, timeout_ms } => {
                assert_eq!((*slots, *timeout_ms), (16, 100));
                assert_eq!(report.exit_code(), 125);
                assert_eq!(error.outcome(), "limit");
                assert!(
                    error
                        .to_string()
                        .contains("one of the host's 16 call slots"),
                    "{error}"
                );
                busy += 1;
            }
            RuntimeErrorKind::Limit { limit, .. } => {
                assert_eq!(*limit, warden::LimitKind::Timeout, "{error}");
                timed_out += 1;
            }
            other => panic!("neither a timeout nor a concurrency limit: {other:?}"),
        }
    }
    assert!(timed_out >= 16, "{timed_out} calls ran and timed out");
    assert!(busy > 0, "no call was left waiting");
    assert_eq!(busy + timed_out, 256);
    warden.flush().unwrap();
    let outcomes = closed_runs(dir.path(), 256);
    assert_eq!(outcomes.get("limit"), Some(&256), "{outcomes:?}");
    let records = log_records(&dir.path().join("audit.jsonl"));
    let concurrency = records
        .iter()
        .filter(|r| r["event"] == "limit_exceeded" && r["limit"] == "concurrency")
        .count();
    assert_eq!(concurrency, busy);
    assert!(
        records
            .iter()
            .filter(|r| r["event"] == "run_end")
            .all(|r| r["outcome"] != "trap"),
        "a call was blamed on the plugin"
    );
}

#[test]
fn under_process_isolation_the_bound_applies_to_workers() {
    // One slot: the first call runs its 100 ms; the second gets the slot with 50 ms
    // of its 150 ms left and is cut; the others wait out their timeout.
    let dir = tempfile::tempdir().unwrap();
    let (warden, plugin) = sleeper_host(dir.path(), "process", "150ms", 100, 1);
    assert_eq!(plugin.confinement().isolation.as_str(), "process");
    let reports = call_at_once(&plugin, 6);
    let codes: Vec<u8> = reports.iter().map(RunReport::exit_code).collect();
    assert!(codes.iter().all(|c| [0, 124, 125].contains(c)), "{codes:?}");
    assert!(
        codes.contains(&125),
        "no call waited past its deadline: {codes:?}"
    );
    assert!(codes.iter().filter(|c| **c == 0).count() >= 1, "{codes:?}");
    warden.flush().unwrap();
    let outcomes = closed_runs(dir.path(), 6);
    assert!(
        !outcomes.contains_key("trap") && !outcomes.contains_key("worker_died"),
        "{outcomes:?}"
    );
    // With room for every call, every call completes.
    let dir = tempfile::tempdir().unwrap();
    let (warden, plugin) = sleeper_host(dir.path(), "process", "5s", 100, 4);
    for report in call_at_once(&plugin, 8) {
        assert_eq!(report.exit_code(), 0, "{:?}", report.result);
    }
    warden.flush().unwrap();
    assert_eq!(closed_runs(dir.path(), 8).get("success"), Some(&8));
}
