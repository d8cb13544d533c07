//! `warden audit verify`: recompute the chain of one or more files, oldest first.
//!
//! Every record must follow from the one before it: `seq` one more, `prev` the
//! SHA-256 of the previous record's line, and the first record of the first file must
//! start the chain (`seq` 0, `prev` 64 zeros). The first record that does not follow
//! is reported by file, line and seq.
//!
//! A line is *torn* only when it is what a writer that stopped mid-line (a crash, a
//! full disk) leaves: the beginning of a record, JSON that ends where more was needed.
//! That is not tampering: at the end of the log it is reported as such; in the middle
//! it is passed over when the next record chains to the last complete one (the writer
//! that came next did exactly that), and reported as a break otherwise. Every torn
//! line passed over is listed with its place. A line that is complete JSON is never
//! torn: it must be a record, decoded strictly (no repeated key, the common fields of
//! their types), and chain, wherever it is; anything else is a break, because tools
//! such as jq read such a line as a record.
//!
//! Records of one run share `run_id`. A run whose `run_start` has no `run_end` after it
//! is *incomplete*: its tail was lost (a cut file, a full disk, a crash), or the run is
//! still going on while verify reads the log; verify cannot tell these apart, so it
//! lists every such run with the place of its `run_start` and fails.
//!
//! Each file is read under a shared `flock`, so a writer is never caught mid-line.
//!
//! # Checkpoints and the tail
//!
//! A `checkpoint` record ([`super::checkpoint`]) must match the chain it sits in: its
//! `head` is its own `prev` and its `records` its own `seq`, else the records before
//! it were rebuilt. With [`VerifyOptions::key`], each checkpoint's signature must hold
//! for that key, and a set whose oldest files were deleted (its first record is not
//! seq 0) verifies from where it starts when a signed checkpoint later in it anchors
//! those records. [`VerifyOptions::expect_heads`] (a head printed by an earlier
//! verify, or a checkpoint file's line) must each be the hash of a record in the
//! chain: a log cut before one of them fails.

use super::chain::line_hash;
use super::record::{GENESIS, Line, classify};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest line verify reads; a longer one is not a record.
const MAX_LINE: u64 = 64 * 1024 * 1024;

/// A line in one of the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as given.
    pub file: PathBuf,
    /// 1-based line number in that file.
    pub line: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            crate::escape::escape_line(&self.file.display().to_string()),
            self.line
        )
    }
}

/// Why the chain breaks at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakKind {
    /// The line is not an audit record at all.
    NotARecord {
        /// What it is instead.
        what: &'static str,
    },
    /// The line is an incomplete record and the next record does not skip it: it was
    /// edited, not torn by a crash.
    CutRecord,
    /// The first record does not start a chain.
    Start {
        /// Its seq.
        seq: u64,
    },
    /// The first record's `prev` is not 64 zeros.
    StartPrev,
    /// `seq` is not one more than the previous record's.
    Seq {
        /// What it should be.
        expected: u64,
        /// What it is.
        found: u64,
    },
    /// `prev` is not the hash of the previous record.
    Prev {
        /// The previous record.
        previous: Location,
        /// Its seq.
        previous_seq: u64,
    },
    /// A `checkpoint` record does not match the chain or its signature does not hold.
    Checkpoint {
        /// What is wrong.
        problem: String,
    },
    /// A head that must be in the chain (`--expect-head`, a checkpoint file) is not.
    MissingHead {
        /// The head.
        head: String,
    },
    /// The set starts after seq 0 and no checkpoint signed by the key anchors it.
    Unanchored {
        /// Its first seq.
        seq: u64,
    },
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first line that does not follow.
    pub at: Location,
    /// Its `seq`, when it has one.
    pub seq: Option<u64>,
    /// Why.
    pub kind: BreakKind,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.at)?;
        if let Some(seq) = self.seq {
            write!(f, "seq {seq}: ")?;
        }
        match &self.kind {
            BreakKind::NotARecord { what } => write!(f, "{what}, where a record was expected"),
            BreakKind::CutRecord => f.write_str(
                "an incomplete record that the next record does not skip: it was edited, not torn by a crash",
            ),
            BreakKind::Start { seq } => write!(
                f,
                "the chain starts at seq {seq}, not 0: give all the files, oldest first, or a record was removed"
            ),
            BreakKind::StartPrev => {
                f.write_str("the first record's prev is not 64 zeros: records before it are missing")
            }
            BreakKind::Seq { expected, found } if found > expected => write!(
                f,
                "seq {found} where {expected} was expected: records were removed or moved before this line"
            ),
            BreakKind::Seq { expected, .. } => write!(
                f,
                "seq {expected} was expected: this record was inserted, repeated or moved"
            ),
            BreakKind::Checkpoint { problem } => write!(f, "checkpoint: {problem}"),
            BreakKind::MissingHead { head } => write!(
                f,
                "the head {head} that was expected is not in the chain: the log was cut before it, or rebuilt"
            ),
            BreakKind::Unanchored { seq } => write!(
                f,
                "the set starts at seq {seq} (older files deleted?) and no checkpoint signed by the given key anchors it; give the older files, or verify with `--key` a set holding a checkpoint"
            ),
            BreakKind::Prev {
                previous,
                previous_seq,
            } => write!(
                f,
                "prev is not the SHA-256 of the previous record ({previous}, seq {previous_seq}): that record was edited, or one was inserted or removed"
            ),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record follows from the one before it.
    Ok,
    /// The log ends with a torn line: a writer stopped mid-record (a crash, a full
    /// disk). The records before it chain correctly.
    Torn {
        /// The first torn line at the end.
        at: Location,
        /// It has no `\n` (the classic crash); otherwise a later writer ended it.
        unterminated: bool,
    },
    /// The chain breaks: something was edited, removed, inserted or reordered.
    Break(Break),
}

/// A run whose `run_start` has no `run_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteRun {
    /// Its `run_id`, as written in the log.
    pub run_id: String,
    /// Where its `run_start` is.
    pub run_start: Location,
    /// The `seq` of its `run_start`.
    pub seq: u64,
}

impl fmt::Display for IncompleteRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: seq {}: run {} has a run_start but no run_end: its last records were lost (a cut tail, a full disk, a crash), or it was still running",
            self.run_start,
            self.seq,
            crate::escape::escape_line(&self.run_id)
        )
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records that chain correctly, up to the break if any.
    pub records: u64,
    /// Hex SHA-256 of the last record that chains correctly (64 zeros for none): keep it
    /// elsewhere, to detect a truncated tail later.
    pub head: String,
    /// Torn lines in the middle that the chain skips (a writer crashed there and the
    /// next one went on).
    pub torn_skipped: Vec<Location>,
    /// Torn lines at the end of the log, after the last record (the first is the one
    /// [`Verdict::Torn`] names).
    pub torn_tail: Vec<Location>,
    /// Runs with a `run_start` and no `run_end`, in log order. Empty when the chain
    /// breaks: what follows a break cannot be trusted to say which runs ended.
    pub incomplete_runs: Vec<IncompleteRun>,
    /// Ok, torn, or where it breaks.
    pub verdict: Verdict,
    /// The seq the files start at: 0, or later when older files were deleted and a
    /// signed checkpoint anchors what is left.
    pub started_at: u64,
    /// `checkpoint` records that match the chain (signature checked when a key was
    /// given).
    pub checkpoints: u64,
}

impl VerifyReport {
    /// Whether the log verifies: the chain holds to its last line, and every run that
    /// started has ended.
    pub fn is_ok(&self) -> bool {
        self.verdict == Verdict::Ok && self.incomplete_runs.is_empty()
    }
}

/// A file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `{}`: {source}", crate::escape::escape_line(&.path.display().to_string()))]
pub struct VerifyError {
    /// The file.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

/// What `verify` checks beyond the chain itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The checkpoint key: every checkpoint's signature must hold for it, and a set
    /// whose oldest files were deleted verifies from a checkpoint it signed.
    pub key: Option<ed25519_dalek::VerifyingKey>,
    /// Heads (SHA-256 of record lines) that must be in the chain.
    pub expect_heads: Vec<String>,
}

struct Chain {
    options: VerifyOptions,
    found_heads: HashSet<String>,
    /// The seq the set starts at (0 unless older files were deleted).
    started_at: u64,
    /// Checkpoints that match the chain (and whose signature holds, with a key).
    checkpoints: u64,
    expected: u64,
    prev: String,
    last: Option<(Location, u64)>,
    records: u64,
    fragments: Vec<(Location, bool)>,
    torn_skipped: Vec<Location>,
    /// Runs whose `run_start` was seen and whose `run_end` was not yet.
    open_runs: HashMap<String, (u64, Location)>,
}

impl Chain {
    fn report(self, verdict: Verdict) -> VerifyReport {
        let mut incomplete_runs: Vec<IncompleteRun> = if matches!(verdict, Verdict::Break(_)) {
            Vec::new()
        } else {
            self.open_runs
                .into_iter()
                .map(|(run_id, (seq, run_start))| IncompleteRun {
                    run_id,
                    run_start,
                    seq,
                })
                .collect()
        };
        incomplete_runs.sort_by_key(|r| r.seq);
        VerifyReport {
            records: self.records,
            started_at: self.started_at,
            checkpoints: self.checkpoints,
            head: self.prev,
            torn_skipped: self.torn_skipped,
            torn_tail: self.fragments.into_iter().map(|(at, _)| at).collect(),
            incomplete_runs,
            verdict,
        }
    }

    /// Takes one line; `Some` ends the verification with a break.
    fn line(&mut self, at: Location, content: &[u8], terminated: bool) -> Option<Break> {
        match classify(content) {
            Line::Record(fields) => {
                // A set whose oldest files were deleted starts where it starts; a
                // signed checkpoint must anchor it (checked at the end).
                if self.last.is_none()
                    && self.records == 0
                    && fields.seq != 0
                    && self.options.key.is_some()
                {
                    self.expected = fields.seq;
                    self.prev = fields.prev.clone();
                    self.started_at = fields.seq;
                }
                if fields.seq == self.expected && fields.prev == self.prev {
                    if fields.event == "checkpoint"
                        && let Some(problem) = self.checkpoint_problem(content, fields.seq)
                    {
                        return Some(Break {
                            at,
                            seq: Some(fields.seq),
                            kind: BreakKind::Checkpoint { problem },
                        });
                    }
                    self.torn_skipped
                        .extend(self.fragments.drain(..).map(|(at, _)| at));
                    self.prev = line_hash(content);
                    if self.options.expect_heads.contains(&self.prev) {
                        self.found_heads.insert(self.prev.clone());
                    }
                    self.expected += 1;
                    self.records += 1;
                    match fields.event.as_str() {
                        "run_start" => {
                            self.open_runs
                                .entry(fields.run_id)
                                .or_insert_with(|| (fields.seq, at.clone()));
                        }
                        "run_end" => {
                            self.open_runs.remove(&fields.run_id);
                        }
                        _ => {}
                    }
                    self.last = Some((at, fields.seq));
                    return None;
                }
                if let Some((fragment, _)) = self.fragments.first() {
                    return Some(Break {
                        at: fragment.clone(),
                        seq: None,
                        kind: BreakKind::CutRecord,
                    });
                }
                let kind = match &self.last {
                    None if fields.seq != 0 => BreakKind::Start { seq: fields.seq },
                    None => BreakKind::StartPrev,
                    Some(_) if fields.seq != self.expected => BreakKind::Seq {
                        expected: self.expected,
                        found: fields.seq,
                    },
                    Some((previous, previous_seq)) => BreakKind::Prev {
                        previous: previous.clone(),
                        previous_seq: *previous_seq,
                    },
                };
                Some(Break {
                    at,
                    seq: Some(fields.seq),
                    kind,
                })
            }
            Line::Fragment => {
                self.fragments.push((at, !terminated));
                None
            }
            Line::Foreign(what) => Some(Break {
                at,
                seq: None,
                kind: BreakKind::NotARecord { what },
            }),
        }
    }
}

impl Chain {
    /// What is wrong with the checkpoint record `content` at `seq`, if anything: its
    /// `head` must be its own `prev`, its `records` its own `seq`, and with a key its
    /// signature must hold.
    fn checkpoint_problem(&mut self, content: &[u8], seq: u64) -> Option<String> {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(content) else {
            return Some("not JSON".into());
        };
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
        let (head, ts, key_id, signature) =
            (text("head"), text("ts"), text("key_id"), text("signature"));
        let records = v.get("records").and_then(serde_json::Value::as_u64);
        if head != self.prev || records != Some(seq) {
            return Some(format!(
                "it signed head {head} after {} records, but the chain before it has head {} after {seq}: the records before it were rebuilt",
                records.map_or("?".to_owned(), |r| r.to_string()),
                self.prev
            ));
        }
        if let Some(key) = &self.options.key {
            let expected_id = super::checkpoint::key_id(key);
            if key_id != expected_id {
                return Some(format!(
                    "signed by key {key_id}, not by the given key {expected_id}"
                ));
            }
            if !super::checkpoint::signature_holds(key, head, seq, ts, signature) {
                return Some(format!(
                    "its signature does not hold for key {expected_id}: it was forged or edited"
                ));
            }
        }
        self.checkpoints += 1;
        None
    }
}

/// Verifies `files` as one chain, oldest first.
///
/// # Errors
///
/// [`VerifyError`] when a file cannot be opened, locked or read.
pub fn verify_files<P: AsRef<Path>>(files: &[P]) -> Result<VerifyReport, VerifyError> {
    verify_files_with(files, &VerifyOptions::default())
}

/// Verifies `files` as one chain, oldest first, with `options` (a checkpoint key,
/// heads that must be in the chain).
///
/// # Errors
///
/// [`VerifyError`] when a file cannot be opened, locked or read.
pub fn verify_files_with<P: AsRef<Path>>(
    files: &[P],
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let mut chain = Chain {
        options: options.clone(),
        found_heads: HashSet::new(),
        started_at: 0,
        checkpoints: 0,
        expected: 0,
        prev: GENESIS.to_owned(),
        last: None,
        records: 0,
        fragments: Vec::new(),
        torn_skipped: Vec::new(),
        open_runs: HashMap::new(),
    };
    let mut buf = Vec::new();
    for path in files {
        let path = path.as_ref();
        let error = |source| VerifyError {
            path: path.into(),
            source,
        };
        let file = File::open(path).map_err(error)?;
        file.lock_shared().map_err(error)?;
        let mut reader = BufReader::new(&file);
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut buf)
                .map_err(error)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let at = Location {
                file: path.into(),
                line: line_no,
            };
            let (content, terminated) = match buf.strip_suffix(b"\n") {
                Some(content) => (content, true),
                None => (&buf[..], false),
            };
            if content.len() as u64 > MAX_LINE {
                return Ok(chain.report(Verdict::Break(Break {
                    at,
                    seq: None,
                    kind: BreakKind::NotARecord {
                        what: "a line longer than 64 MiB",
                    },
                })));
            }
            if let Some(b) = chain.line(at, content, terminated) {
                return Ok(chain.report(Verdict::Break(b)));
            }
        }
        let _ = file.unlock();
    }
    let end = chain
        .last
        .as_ref()
        .map(|(at, _)| at.clone())
        .unwrap_or(Location {
            file: files
                .last()
                .map(|p| p.as_ref().to_path_buf())
                .unwrap_or_default(),
            line: 0,
        });
    if chain.started_at > 0 && chain.checkpoints == 0 {
        let seq = chain.started_at;
        return Ok(chain.report(Verdict::Break(Break {
            at: end,
            seq: None,
            kind: BreakKind::Unanchored { seq },
        })));
    }
    if let Some(missing) = options
        .expect_heads
        .iter()
        .find(|h| !chain.found_heads.contains(*h))
    {
        let head = missing.clone();
        return Ok(chain.report(Verdict::Break(Break {
            at: end,
            seq: None,
            kind: BreakKind::MissingHead { head },
        })));
    }
    let verdict = match chain.fragments.first() {
        Some((at, unterminated)) => Verdict::Torn {
            at: at.clone(),
            unterminated: *unterminated,
        },
        None => Verdict::Ok,
    };
    Ok(chain.report(verdict))
}

impl VerifyReport {
    /// The one-line summary `warden audit verify` prints last.
    pub fn summary(&self) -> String {
        let incomplete = match self.incomplete_runs.len() {
            0 => String::new(),
            1 => "; 1 run has a run_start but no run_end".to_owned(),
            n => format!("; {n} runs have a run_start but no run_end"),
        };
        match &self.verdict {
            Verdict::Ok if incomplete.is_empty() => {
                let mut text = format!("ok: {} records, head {}", self.records, self.head);
                if self.started_at > 0 {
                    text.push_str(&format!(
                        " (from seq {}: older records deleted, anchored by a signed checkpoint)",
                        self.started_at
                    ));
                }
                if self.checkpoints > 0 {
                    text.push_str(&format!(", {} checkpoint(s)", self.checkpoints));
                }
                text
            }
            Verdict::Ok => format!(
                "incomplete: the {} records chain correctly, head {}{incomplete}: their last records were lost (a cut tail, a full disk, a crash), or a run was still going on",
                self.records, self.head
            ),
            Verdict::Torn { at, unterminated } => format!(
                "torn: {at}: the last {} an incomplete record: a writer stopped mid-line (a crash or a full disk), not an edit; the {} records before it chain correctly, head {}{incomplete}",
                if *unterminated {
                    "line is"
                } else {
                    "lines hold"
                },
                self.records,
                self.head
            ),
            Verdict::Break(b) => format!(
                "break: {b} (the {} records before it chain correctly)",
                self.records
            ),
        }
    }
}
