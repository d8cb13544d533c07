//! `warden run` killed (SIGKILL) at random points of its life: what its audit log
//! still promises. A killed process writes nothing more, so whatever its guest did
//! must already have its `run_start` in the log, and `audit verify` must tell a run
//! cut short (incomplete) from tampering (a break).

use crate::cli::warden_command;
use crate::common::*;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..=max`.
    fn upto(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap().max(1);
        Duration::from_nanos(self.next() % (nanos + 1))
    }
}

/// `warden run` of file-writer writing `out/TOKEN`, under `policy`, to `log`.
fn writer_run(ws: &Path, policy: &Path, log: &Path, token: &str) -> std::process::Command {
    let mut cmd = warden_command();
    cmd.arg("run")
        .arg("--policy")
        .arg(policy)
        .arg("--workdir")
        .arg(ws)
        .arg("--audit-log")
        .arg(log)
        .arg(example_plugin("file-writer"))
        .args(["write", token, "x"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

#[test]
fn runs_killed_at_random_points_keep_run_start_before_every_effect_and_verify_as_incomplete() {
    const RUNS: usize = 200;
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join("out")).unwrap();
    let log = ws.path().join("log/audit.jsonl");
    // `log_args`: each run_start names the file its run writes. Both isolations: the
    // guest in warden's own process, and in a worker that outlives nothing.
    let policies: Vec<_> = ["in-process", "process"]
        .iter()
        .map(|isolation| {
            crate::policy::policy_file(
                ws.path(),
                &format!("{isolation}.toml"),
                &format!(
                    "version = 1\n[defaults]\nisolation = \"{isolation}\"\n[audit]\nlog_args = true\n\
                     [plugins.file-writer]\nfs.write = [\"./out\"]\nstdio = [\"stdout\"]\n"
                ),
            )
        })
        .collect();

    // How long a whole run takes here (the module cached), so that the kills fall
    // all along one.
    let mut whole = Duration::ZERO;
    for round in 0..2 {
        for (i, policy) in policies.iter().enumerate() {
            let started = Instant::now();
            let status = writer_run(ws.path(), policy, &log, &format!("whole-{round}-{i}"))
                .status()
                .unwrap();
            assert!(status.success());
            if round == 1 {
                whole = whole.max(started.elapsed());
            }
        }
    }

    let seed = 0x5eed_0021_u64;
    let mut rng = Rng(seed);
    let mut finished = BTreeSet::new();
    for i in 0..RUNS {
        let token = format!("cut-{i}");
        let policy = &policies[i % policies.len()];
        let mut child = writer_run(ws.path(), policy, &log, &token).spawn().unwrap();
        std::thread::sleep(rng.upto(whole));
        // SIGKILL; a run that ended first is simply reaped.
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            finished.insert(token);
        }
    }

    // Every line that is a whole record (a kill may leave a torn one).
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut started: HashMap<String, String> = HashMap::new();
    let mut ended = BTreeSet::new();
    for r in &records {
        let run_id = r["run_id"].as_str().unwrap().to_owned();
        match r["event"].as_str().unwrap() {
            "run_start" => {
                let token = r["args"][1].as_str().unwrap().to_owned();
                started.insert(token, run_id);
            }
            "run_end" => {
                ended.insert(run_id);
            }
            _ => {}
        }
    }

    // Whatever a guest did, its run_start was written first: each file in out/ is
    // named in a run_start.
    let mut effects = 0;
    for entry in std::fs::read_dir(ws.path().join("out")).unwrap() {
        let token = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            started.contains_key(&token),
            "seed {seed:#x}: out/{token} was written, and no run_start names it"
        );
        effects += 1;
    }
    // Every run that finished has its whole story.
    for token in &finished {
        let run_id = &started[token];
        assert!(
            ended.contains(run_id),
            "seed {seed:#x}: {token} ended without run_end"
        );
    }

    // verify: each cut run is incomplete, never a break; nothing else is reported.
    let report = warden::audit::verify_files(&[&log]).unwrap();
    assert!(
        !matches!(report.verdict, warden::audit::Verdict::Break(_)),
        "seed {seed:#x}: {:?}",
        report.verdict
    );
    let all_ids: BTreeSet<String> = records
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect();
    let cut: BTreeSet<String> = all_ids.difference(&ended).cloned().collect();
    let incomplete: BTreeSet<String> = report
        .incomplete_runs
        .iter()
        .map(|r| r.run_id.clone())
        .collect();
    assert_eq!(incomplete, cut, "seed {seed:#x}");
    let cut_mid_run = report.incomplete_runs.iter().filter(|r| r.started).count();
    eprintln!(
        "{} of {RUNS} runs finished; {cut_mid_run} cut between run_start and run_end, {} \
         during their load; {effects} files written; torn lines {}",
        finished.len(),
        report.incomplete_runs.len() - cut_mid_run,
        report.torn_skipped.len() + report.torn_tail.len()
    );
    assert!(
        cut_mid_run > 0 && finished.len() < RUNS,
        "seed {seed:#x}: no run was cut between its run_start and its run_end \
         ({} of {RUNS} finished, {effects} files written); the kills missed every run",
        finished.len()
    );

    // The next run goes on after whatever the kills left, and the chain holds.
    let status = writer_run(ws.path(), &policies[0], &log, "after")
        .status()
        .unwrap();
    assert!(status.success());
    let report = warden::audit::verify_files(&[&log]).unwrap();
    assert!(
        !matches!(report.verdict, warden::audit::Verdict::Break(_)),
        "{:?}",
        report.verdict
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "run_end");
    assert_eq!(last["outcome"], "success");
}
