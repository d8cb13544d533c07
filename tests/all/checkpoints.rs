//! What a key and checkpoint files vouch for, against a forger who can write the log
//! but does not hold the key: a chain rebuilt from seq 0 without its checkpoints, a
//! log cut up to its newest checkpoint, a checkpoint file whose unsigned
//! `line_sha256` was pointed at another line, a fleet with a checkpoint per host, and
//! the unsigned tail after the last checkpoint.

use crate::cli::warden_command;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use warden::audit::{AuditLog, PolicyInfo, Rotation, RunEnd};

/// A folder with a key pair, logs and checkpoint files.
struct Site {
    dir: tempfile::TempDir,
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

impl Site {
    fn new() -> Site {
        let site = Site {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = warden_command()
            .args(["audit", "keygen", "--out"])
            .arg(site.path("ops"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn public(&self) -> String {
        self.path("ops.pub").display().to_string()
    }

    /// Appends `n` runs of two records each (`policy_loaded`, `run_end`).
    fn runs(&self, log: &Path, n: usize) {
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let audit = AuditLog::open(log, Rotation::Never).unwrap();
        for _ in 0..n {
            let mut run = audit.run().unwrap();
            run.policy_loaded(&PolicyInfo {
                path: "/etc/warden/policy.toml".into(),
                sha256: None,
                mode: "enforce".into(),
            })
            .unwrap();
            run.run_end(&RunEnd::refused(77, "a test run")).unwrap();
        }
        audit.finish().unwrap();
    }

    /// `warden audit checkpoint` of `log`, written to `out`.
    fn checkpoint(&self, log: &Path, out: &Path) {
        let o = warden_command()
            .args(["audit", "checkpoint", "--key"])
            .arg(self.path("ops.key"))
            .arg("--out")
            .arg(out)
            .arg(log)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }

    /// `warden audit verify ARGS`: exit code and everything it printed.
    fn verify(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = warden_command()
            .args(["audit", "verify"])
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn field(line: &str, key: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(line).unwrap()[key].clone()
}

/// Re-chains `lines` from seq 0 as a forger would: each line whose `seq` and `prev`
/// already follow is kept byte for byte, every other one gets them recomputed.
fn rechain(lines: &[String]) -> String {
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for (seq, line) in lines.iter().enumerate() {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
        let text = if v["seq"] == seq && v["prev"] == prev.as_str() {
            line.clone()
        } else {
            v.insert("seq".into(), seq.into());
            v.insert("prev".into(), prev.clone().into());
            serde_json::to_string(&v).unwrap()
        };
        prev = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        out.push_str(&text);
        out.push('\n');
    }
    out
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// A log of 2 runs (seq 0-3), a checkpoint (seq 4, `cp1.checkpoint`), 2 runs (seq
/// 5-8), a checkpoint (seq 9, `cp2.checkpoint`), 1 run (seq 10-11).
fn two_checkpoints(site: &Site, log: &Path) {
    site.runs(log, 2);
    site.checkpoint(log, &site.path("cp1.checkpoint"));
    site.runs(log, 2);
    site.checkpoint(log, &site.path("cp2.checkpoint"));
    site.runs(log, 1);
    let all = lines(log);
    assert_eq!(all.len(), 12);
    assert_eq!(field(&all[4], "event"), "checkpoint");
    assert_eq!(field(&all[9], "event"), "checkpoint");
}

#[test]
fn a_chain_rebuilt_from_seq_0_without_its_checkpoints_fails_verify_key() {
    let site = Site::new();
    let log = site.path("web-1/audit.jsonl");
    two_checkpoints(&site, &log);
    let log_arg = log.display().to_string();
    let public = site.public();
    let (code, said) = site.verify(&["--key", &public, &log_arg]);
    assert_eq!(code, Some(0), "{said}");

    // The forger deletes the run between the checkpoints, drops every checkpoint
    // record and rebuilds the chain from seq 0.
    let original = lines(&log);
    let victim = field(&original[5], "run_id");
    let edited: Vec<String> = original
        .iter()
        .filter(|l| field(l, "run_id") != victim && field(l, "event") != "checkpoint")
        .cloned()
        .collect();
    assert_eq!(edited.len(), 8);
    std::fs::write(&log, rechain(&edited)).unwrap();
    let (code, said) = site.verify(&[&log_arg]);
    assert_eq!(
        code,
        Some(0),
        "without a key the rebuilt chain looks whole: {said}"
    );

    let (code, said) = site.verify(&["--key", &public, &log_arg]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("no checkpoint in the chain is signed by key"),
        "{said}"
    );
    let hosts = site.path("").display().to_string();
    let (code, said) = site.verify(&["--hosts", &hosts, "--key", &public]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("web-1: break: ") && said.contains("no checkpoint in the chain is signed"),
        "{said}"
    );
}

#[test]
fn records_after_the_last_signed_checkpoint_are_reported_as_the_unsigned_tail() {
    let site = Site::new();
    let log = site.path("audit.jsonl");
    two_checkpoints(&site, &log);
    let log_arg = log.display().to_string();
    let public = site.public();
    let (code, said) = site.verify(&["--key", &public, &log_arg]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "unsigned tail: 2 record(s) from seq 10 ({log_arg}:11) follow the last signed checkpoint"
        )),
        "{said}"
    );
    assert!(
        said.contains("signed: 2 checkpoints signed by key"),
        "{said}"
    );

    // Cut right after the last checkpoint: nothing unsigned is left.
    let mut kept = lines(&log);
    kept.truncate(10);
    write(&log, &kept);
    let (code, said) = site.verify(&["--key", &public, &log_arg]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("no unsigned tail"), "{said}");

    // A checkpoint at the very end leaves no unsigned tail.
    site.runs(&log, 1);
    site.checkpoint(&log, &site.path("cp3.checkpoint"));
    let cp3 = site.path("cp3.checkpoint").display().to_string();
    let (code, said) = site.verify(&["--key", &public, "--checkpoint", &cp3, &log_arg]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("no unsigned tail") && said.contains("1 checkpoint file(s) found"),
        "{said}"
    );
}

#[test]
fn a_log_cut_up_to_its_newest_checkpoint_verifies_only_with_allow_missing_start() {
    let site = Site::new();
    let log = site.path("audit.jsonl");
    two_checkpoints(&site, &log);
    let log_arg = log.display().to_string();
    let public = site.public();
    let cp1 = site.path("cp1.checkpoint").display().to_string();
    let cp2 = site.path("cp2.checkpoint").display().to_string();
    // Everything before the newest checkpoint is cut off: the run between the two
    // checkpoints is gone, and the newest checkpoint is still in the log.
    let all = lines(&log);
    write(&log, &all[9..]);
    let (code, said) = site.verify(&["--key", &public, "--checkpoint", &cp2, &log_arg]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "break: {log_arg}:1: seq 9: the chain starts at seq 9, not 0"
        )) && said.contains("--allow-missing-start"),
        "{said}"
    );
    // Asked for, it verifies from there and says where it starts and what vouches.
    let (code, said) = site.verify(&[
        "--key",
        &public,
        "--allow-missing-start",
        "--checkpoint",
        &cp2,
        &log_arg,
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "(from seq 9: the records before it are missing, as allowed; the signed checkpoint at seq 9 ({log_arg}:1) vouches for the start)"
        )),
        "{said}"
    );
    // The older checkpoint file names what is missing.
    let (code, said) = site.verify(&[
        "--key",
        &public,
        "--allow-missing-start",
        "--checkpoint",
        &cp1,
        &log_arg,
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("signed seq 4, before the set's first record (seq 9)"),
        "{said}"
    );
    // It is a flag of the key.
    let (code, said) = site.verify(&["--allow-missing-start", &log_arg]);
    assert_eq!(code, Some(2), "{said}");
}

#[test]
fn a_checkpoint_file_passes_only_with_its_signed_head_at_its_seq() {
    let site = Site::new();
    let log = site.path("audit.jsonl");
    two_checkpoints(&site, &log);
    let log_arg = log.display().to_string();
    let public = site.public();
    let cp2_path = site.path("cp2.checkpoint");
    let cp2 = cp2_path.display().to_string();
    let all = lines(&log);
    let (code, said) = site.verify(&["--key", &public, "--checkpoint", &cp2, &log_arg]);
    assert_eq!(code, Some(0), "{said}");

    // The forger cuts the log before the second checkpoint and points the file's
    // unsigned `line_sha256` at a line still in the log.
    write(&log, &all[..9]);
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cp2_path).unwrap()).unwrap();
    file["line_sha256"] = hex::encode(sha2::Sha256::digest(all[6].as_bytes())).into();
    std::fs::write(&cp2_path, file.to_string()).unwrap();
    let (code, said) = site.verify(&["--key", &public, "--checkpoint", &cp2, &log_arg]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "the chain ends at seq 8, before the checkpoint at seq 9 that the checkpoint file `{cp2}` signed: the log was cut"
        )),
        "{said}"
    );

    // Its signed facts cannot be moved to fit the cut.
    let mut moved = file.clone();
    moved["records"] = 6.into();
    moved["head"] = hex::encode(sha2::Sha256::digest(all[5].as_bytes())).into();
    std::fs::write(&cp2_path, moved.to_string()).unwrap();
    let (code, said) = site.verify(&["--key", &public, "--checkpoint", &cp2, &log_arg]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("has a signature that does not hold"),
        "{said}"
    );

    // A record deleted before it and the chain rebuilt (the second checkpoint
    // dropped, the first still holds): another head at its seq.
    std::fs::write(&cp2_path, file.to_string()).unwrap();
    let victim = field(&all[5], "run_id");
    let rebuilt: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, l)| *i != 9 && field(l, "run_id") != victim)
        .map(|(_, l)| l.clone())
        .collect();
    std::fs::write(&log, rechain(&rebuilt)).unwrap();
    let (code, said) = site.verify(&["--key", &public, &log_arg]);
    assert_eq!(code, Some(0), "the first checkpoint still holds: {said}");
    // One more run, so that the chain reaches seq 9 again.
    site.runs(&log, 1);
    let (code, said) = site.verify(&["--key", &public, "--checkpoint", &cp2, &log_arg]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("but the chain holds another head there"),
        "{said}"
    );

    // A checkpoint file is worth its signature: it needs the key.
    let (code, said) = site.verify(&["--checkpoint", &cp2, &log_arg]);
    assert_eq!(code, Some(2), "{said}");
}

#[test]
fn verify_hosts_takes_a_checkpoint_per_host_matched_by_name() {
    let site = Site::new();
    let hosts = site.path("hosts");
    let kept = site.path("kept");
    std::fs::create_dir_all(&kept).unwrap();
    for host in ["web-1", "web-2"] {
        let log = hosts.join(host).join("audit.jsonl");
        site.runs(&log, 2);
        site.checkpoint(&log, &kept.join(format!("{host}.checkpoint")));
        site.runs(&log, 1);
    }
    let hosts_arg = hosts.display().to_string();
    let kept_arg = kept.display().to_string();
    let public = site.public();
    let (code, said) = site.verify(&[
        "--hosts",
        &hosts_arg,
        "--key",
        &public,
        "--checkpoint",
        &kept_arg,
    ]);
    assert_eq!(code, Some(0), "{said}");
    for host in ["web-1", "web-2"] {
        assert!(
            said.contains(&format!("{host}: ok: 7 records"))
                && said.contains(&format!("{host}: signed: 1 checkpoint signed by key")),
            "{said}"
        );
    }
    assert_eq!(
        said.matches("1 checkpoint file(s) found in the chain")
            .count(),
        2,
        "{said}"
    );

    // One host's file given alone: the other host has none, and fails.
    let one = kept.join("web-1.checkpoint").display().to_string();
    let (code, said) = site.verify(&[
        "--hosts",
        &hosts_arg,
        "--key",
        &public,
        "--checkpoint",
        &one,
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("web-1: ok: 7 records"), "{said}");
    assert!(
        said.contains("web-2: break: no checkpoint file for this host"),
        "{said}"
    );

    // web-2's log cut before its checkpoint: only web-2 fails.
    let log2 = hosts.join("web-2/audit.jsonl");
    write(&log2, &lines(&log2)[..4]);
    let (code, said) = site.verify(&[
        "--hosts",
        &hosts_arg,
        "--key",
        &public,
        "--checkpoint",
        &kept_arg,
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("web-1: ok: 7 records"), "{said}");
    assert!(
        said.contains("web-2: break: ") && said.contains("before the checkpoint at seq 4"),
        "{said}"
    );

    // A checkpoint for a host whose folder is gone: its logs are missing.
    std::fs::copy(kept.join("web-1.checkpoint"), kept.join("web-3.checkpoint")).unwrap();
    let (code, said) = site.verify(&[
        "--hosts",
        &hosts_arg,
        "--key",
        &public,
        "--checkpoint",
        &kept_arg,
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("web-3: break: the checkpoint file"), "{said}");
    assert!(said.contains("its logs are missing"), "{said}");

    // A file that names no host is a usage error.
    let stray = site.path("head.json");
    std::fs::copy(kept.join("web-1.checkpoint"), &stray).unwrap();
    let stray = stray.display().to_string();
    let (code, said) = site.verify(&[
        "--hosts",
        &hosts_arg,
        "--key",
        &public,
        "--checkpoint",
        &stray,
    ]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("HOST.checkpoint"), "{said}");
}

/// The `records, head` pair a line prints after `prefix` (`checkpoint: `, `ok: `).
fn count_and_head(said: &str, prefix: &str) -> (u64, String) {
    let line = said
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line: {said}"));
    let (count, rest) = line.split_once(" records, head ").unwrap();
    (count.parse().unwrap(), rest[..64].to_owned())
}

/// `audit checkpoint` prints the head the next `audit verify` prints: the one after
/// its own record, which is in the chain from then on; it names the head it signed
/// (the one before its record) apart.
#[test]
fn checkpoint_prints_the_head_that_verify_prints_next() {
    let site = Site::new();
    let log = site.path("audit.jsonl");
    site.runs(&log, 2);
    let out = warden_command()
        .args(["audit", "checkpoint", "--key"])
        .arg(site.path("ops.key"))
        .arg("--out")
        .arg(site.path("cp.checkpoint"))
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let (records, head) = count_and_head(&printed, "checkpoint: ");
    let (code, said) = site.verify(&[&log.display().to_string()]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        count_and_head(&said, "ok: "),
        (records, head),
        "checkpoint said: {printed}"
    );
    // The signed head, named as such, is the checkpoint record's own `head`.
    let record = lines(&log).pop().unwrap();
    let signed = field(&record, "head");
    assert!(
        printed.contains(&format!(
            "signed the head of the 4 records before it, {}, with key",
            signed.as_str().unwrap()
        )),
        "{printed}"
    );
}

/// `--expect-head` takes the first 12 or more hex digits of a head as that head (in
/// either case); fewer, or anything but hex, is a mistake in the command (exit 2), not
/// a cut log; a prefix of no head in the chain is still reported as missing.
#[test]
fn expect_head_takes_a_prefix_of_12_digits_or_more_and_refuses_less() {
    let site = Site::new();
    let log = site.path("audit.jsonl");
    let log_arg = log.display().to_string();
    site.runs(&log, 2);
    let (code, said) = site.verify(&[&log_arg]);
    assert_eq!(code, Some(0), "{said}");
    let (_, head) = count_and_head(&said, "ok: ");
    // More records after it: the head is still in the chain.
    site.runs(&log, 1);
    let upper = head[..20].to_ascii_uppercase();
    for given in [&head[..12], &head[..32], upper.as_str(), head.as_str()] {
        let (code, said) = site.verify(&["--expect-head", given, &log_arg]);
        assert_eq!(code, Some(0), "--expect-head {given}: {said}");
    }
    let ellipsis = format!("{}…", &head[..32]);
    for given in [&head[..11], "", "xyz0123456789", ellipsis.as_str()] {
        let (code, said) = site.verify(&["--expect-head", given, &log_arg]);
        assert_eq!(code, Some(2), "--expect-head {given}: {said}");
        assert!(
            said.contains("is not a head: give the 64 hex digits")
                && !said.contains("not in the chain"),
            "--expect-head {given}: {said}"
        );
    }
    // A prefix of no head in the chain: the log was cut or rebuilt, as for a full head.
    let flipped = if head.starts_with('0') { "1" } else { "0" };
    let wrong = format!("{flipped}{}", &head[1..12]);
    let (code, said) = site.verify(&["--expect-head", &wrong, &log_arg]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "no head in the chain begins with {wrong}, the one that was expected: the log was cut before it, or rebuilt"
        )),
        "{said}"
    );
}
