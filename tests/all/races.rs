//! Races against the grant check: a local user who can write the folder that holds a
//! granted directory swaps it, over and over, with a symlink to a denied one while
//! `warden run` decides and builds the sandbox.

use crate::cli::warden_command;
use crate::common::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const SECRET: &str = "the-denied-secret";

/// Runs to race; the issue asks for at least 300 swaps against real runs.
const RUNS: usize = 300;

/// Swaps `a` and `b` (`renameat2(RENAME_EXCHANGE)`) until `stop`, counting the swaps.
fn swapper(a: &Path, b: &Path, stop: Arc<AtomicBool>, swaps: Arc<AtomicU64>) {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    while !stop.load(Ordering::Relaxed) {
        renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).unwrap();
        swaps.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn swapping_a_granted_directory_for_a_symlink_never_hands_out_the_denied_one() {
    let root = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let work = root.join("work");
    std::fs::create_dir_all(work.join("data")).unwrap();
    std::fs::write(work.join("data/file.txt"), "fine").unwrap();
    std::fs::create_dir(root.join("vault")).unwrap();
    std::fs::write(root.join("vault/file.txt"), SECRET).unwrap();
    // The attacker's symlink, swapped with the granted directory in a loop.
    std::os::unix::fs::symlink(root.join("vault"), work.join("swap")).unwrap();
    let policy = root.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\n[defaults.fs]\ndeny = [{:?}]\n[plugins.file-reader]\nfs.read = [\"./data\"]\nstdio = [\"stdout\"]\n",
            root.join("vault").display().to_string()
        ),
    )
    .unwrap();
    let log = root.join("audit.jsonl");

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let thread = {
        let (a, b) = (work.join("data"), work.join("swap"));
        let (stop, swaps) = (Arc::clone(&stop), Arc::clone(&swaps));
        std::thread::spawn(move || swapper(&a, &b, stop, swaps))
    };
    let reader = example_plugin("file-reader");
    let mut read_fine = 0;
    let mut leaked = Vec::new();
    for _ in 0..RUNS {
        let out = warden_command()
            .arg("run")
            .arg("--policy")
            .arg(&policy)
            .arg("--workdir")
            .arg(&work)
            .arg("--audit-log")
            .arg(&log)
            .arg(&reader)
            .args(["read", "file.txt"])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains(SECRET) {
            leaked.push(text);
        } else if out.status.success() && text.contains("fine") {
            read_fine += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    let swaps = swaps.load(Ordering::Relaxed);

    assert!(
        leaked.is_empty(),
        "{} of {RUNS} runs read the denied directory; first: {}",
        leaked.len(),
        leaked[0]
    );
    assert!(
        swaps >= RUNS as u64,
        "only {swaps} swaps during {RUNS} runs"
    );
    // The race was real: some runs got the granted directory, and the log has the
    // whole story of every run, with no grant of anything in the vault.
    assert!(read_fine > 0, "no run read the granted directory");
    let records = log_records(&log);
    let count = |event: &str| records.iter().filter(|r| r["event"] == event).count();
    assert_eq!(count("run_end"), RUNS, "a run without its run_end");
    let vault = root.join("vault").display().to_string();
    for grant in records.iter().filter(|r| r["event"] == "grant") {
        let host_path = grant["host_path"].as_str().unwrap_or_default();
        assert!(!host_path.starts_with(&vault), "{grant}");
    }
    let verify = warden_command()
        .args(["audit", "verify"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
