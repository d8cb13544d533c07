//! What `warden audit verify` found, and how it says it: [`VerifyReport`], the
//! [`Break`] that stops a chain, the runs and loads left open, the unsigned tail.
//!
//! # Security
//!
//! Everything here may hold text from the log (a run id, a checkpoint's `head` or
//! `key_id`, a file name), which whoever can write the log chose: every such string is
//! passed through [`crate::escape::escape_line`] by the `Display` that prints it, so a
//! hostile log cannot erase a line or paint a fake `ok:` on the reviewer's terminal.

use crate::escape::escape_line;
use std::fmt;
use std::path::PathBuf;

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
            escape_line(&self.file.display().to_string()),
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
        /// What is wrong (log text in it escaped).
        problem: String,
    },
    /// A head that must be in the chain (`--expect-head`) is not.
    MissingHead {
        /// The head, or the prefix of one, as given.
        head: String,
    },
    /// The set starts after seq 0 (`--allow-missing-start`) and no checkpoint signed
    /// by the key vouches for it.
    Unanchored {
        /// Its first seq.
        seq: u64,
    },
    /// A key was given and no checkpoint in the chain is signed by it: the key vouches
    /// for nothing, and a chain rebuilt from seq 0 would look the same.
    NoSignedCheckpoint {
        /// The key's id.
        key_id: String,
    },
    /// A checkpoint file's signed head and record count are not in the chain at its
    /// seq.
    CheckpointFile {
        /// The checkpoint file.
        file: PathBuf,
        /// The seq of the checkpoint it holds (its signed record count).
        seq: u64,
        /// What the chain holds instead.
        problem: CheckpointFileProblem,
    },
}

/// How a chain fails a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointFileProblem {
    /// The record at the file's seq follows another head: the records before it were
    /// rebuilt, or this is another log.
    OtherHead {
        /// The head the chain has there.
        found: String,
    },
    /// The record at the file's seq follows the signed head but is not the checkpoint
    /// the file was written from: what follows the head was replaced.
    NotItsRecord,
    /// The chain ends before the file's seq: the log was cut.
    Cut {
        /// The last seq the chain holds (none: no record at all).
        last_seq: Option<u64>,
    },
    /// The set starts after the file's seq (its older files are missing).
    BeforeStart {
        /// The set's first seq.
        start: u64,
    },
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first line that does not follow (or, for what is missing at the end, the
    /// last record).
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
                "the chain starts at seq {seq}, not 0: give all the files, oldest first, or a record was removed; if the older files were deleted on purpose, `--key PUB --allow-missing-start` verifies from a signed checkpoint in what is left"
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
            BreakKind::Checkpoint { problem } => {
                write!(f, "checkpoint: {}", escape_line(problem))
            }
            BreakKind::MissingHead { head } if head.len() < 64 => write!(
                f,
                "no head in the chain begins with {}, the one that was expected: the log was cut before it, or rebuilt",
                escape_line(head)
            ),
            BreakKind::MissingHead { head } => write!(
                f,
                "the head {} that was expected is not in the chain: the log was cut before it, or rebuilt",
                escape_line(head)
            ),
            BreakKind::Unanchored { seq } => write!(
                f,
                "the set starts at seq {seq} (its older records are missing) and no checkpoint signed by the given key vouches for it: give the older files"
            ),
            BreakKind::NoSignedCheckpoint { key_id } => write!(
                f,
                "no checkpoint in the chain is signed by key {}: the key vouches for nothing, and a chain rebuilt from seq 0 would look the same; sign the log with `warden audit checkpoint`, or verify without `--key`",
                escape_line(key_id)
            ),
            BreakKind::CheckpointFile { file, seq, problem } => {
                let file = escape_line(&file.display().to_string());
                match problem {
                    CheckpointFileProblem::OtherHead { found } => write!(
                        f,
                        "the checkpoint file `{file}` signed the head before seq {seq}, but the chain holds another head there ({}): the records before it were rebuilt, or this is another log",
                        escape_line(found)
                    ),
                    CheckpointFileProblem::NotItsRecord => write!(
                        f,
                        "the record at seq {seq} follows the head the checkpoint file `{file}` signed, but it is not that checkpoint: the records from there on were replaced"
                    ),
                    CheckpointFileProblem::Cut { last_seq: Some(last) } => write!(
                        f,
                        "the chain ends at seq {last}, before the checkpoint at seq {seq} that the checkpoint file `{file}` signed: the log was cut"
                    ),
                    CheckpointFileProblem::Cut { last_seq: None } => write!(
                        f,
                        "the chain holds no record, but the checkpoint file `{file}` signed one at seq {seq}: the log was emptied"
                    ),
                    CheckpointFileProblem::BeforeStart { start } => write!(
                        f,
                        "the checkpoint file `{file}` signed seq {seq}, before the set's first record (seq {start}): give the older files, or leave this checkpoint file out"
                    ),
                }
            }
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

/// A run or a load whose records have no `run_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteRun {
    /// Its `run_id`, as written in the log.
    pub run_id: String,
    /// Where its `run_start` is; for a load that never started a run, its first
    /// record.
    pub run_start: Location,
    /// The `seq` of that record.
    pub seq: u64,
    /// Whether it has a `run_start` (else it is a load that never closed: decisions or
    /// a `policy_loaded`, and neither a `run_start` nor a `run_end`).
    pub started: bool,
}

impl fmt::Display for IncompleteRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = escape_line(&self.run_id);
        if self.started {
            write!(
                f,
                "{}: seq {}: run {id} has a run_start but no run_end: its last records were lost (a cut tail, a full disk, a crash), or it was still running",
                self.run_start, self.seq,
            )
        } else {
            write!(
                f,
                "{}: seq {}: load {id} has records but neither a run_start nor a run_end: a load that never closed (its last records were lost, or a host still held the plugin loaded)",
                self.run_start, self.seq,
            )
        }
    }
}

/// A checkpoint record in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointAt {
    /// Its seq (the number of records it signed for).
    pub seq: u64,
    /// Where it is.
    pub at: Location,
}

/// The records after the last checkpoint signed by the key: nothing signed vouches for
/// them (yet), so whoever can write the log could have rebuilt or cut them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedTail {
    /// How many.
    pub records: u64,
    /// The seq of the first.
    pub first_seq: u64,
    /// Where the first is.
    pub at: Location,
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
    /// Runs with records and no `run_end` (a `run_start` without its end, or a load
    /// that never closed), in log order. Empty when the chain breaks: what follows a
    /// break cannot be trusted to say which runs ended.
    pub incomplete_runs: Vec<IncompleteRun>,
    /// Ok, torn, or where it breaks.
    pub verdict: Verdict,
    /// The seq the files start at: 0, or later when they were allowed to start later
    /// (`allow_missing_start`) and a signed checkpoint vouches for what is there.
    pub started_at: u64,
    /// `checkpoint` records that match the chain (signed by the key, when one was
    /// given).
    pub checkpoints: u64,
    /// The first of them: with a set that starts after seq 0, the one that vouches
    /// for its start.
    pub first_checkpoint: Option<CheckpointAt>,
    /// The last of them.
    pub last_checkpoint: Option<CheckpointAt>,
    /// The id of the key the checkpoints were checked against, when one was given.
    pub key_id: Option<String>,
    /// With a key: the records after the last signed checkpoint, when there are any.
    pub unsigned_tail: Option<UnsignedTail>,
    /// Checkpoint files whose signed head and record count were found in the chain.
    pub checkpoint_files: u64,
}

impl VerifyReport {
    /// Whether the log verifies: the chain holds to its last line, and every run that
    /// started has ended. (An unsigned tail is reported, not failed: checkpoints are
    /// taken from time to time, and the records since the last one are always
    /// unsigned.)
    pub fn is_ok(&self) -> bool {
        self.verdict == Verdict::Ok && self.incomplete_runs.is_empty()
    }

    /// The line that says what is signed, when a key was given: which checkpoints
    /// vouch for what, and the unsigned tail.
    pub fn signed_summary(&self) -> Option<String> {
        let key = self.key_id.as_deref()?;
        if matches!(self.verdict, Verdict::Break(_)) {
            return None;
        }
        let key = escape_line(key);
        let mut text = match (&self.first_checkpoint, &self.last_checkpoint) {
            (Some(first), Some(last)) if self.checkpoints > 1 => format!(
                "signed: {} checkpoints signed by key {key}, the first at seq {} ({}), the last at seq {} ({})",
                self.checkpoints, first.seq, first.at, last.seq, last.at
            ),
            (Some(first), _) => format!(
                "signed: 1 checkpoint signed by key {key}, at seq {} ({})",
                first.seq, first.at
            ),
            _ => return None,
        };
        if self.checkpoint_files > 0 {
            text.push_str(&format!(
                "; {} checkpoint file(s) found in the chain at their seq",
                self.checkpoint_files
            ));
        }
        match &self.unsigned_tail {
            Some(tail) => text.push_str(&format!(
                "; unsigned tail: {} record(s) from seq {} ({}) follow the last signed checkpoint: nothing signed vouches for them yet",
                tail.records, tail.first_seq, tail.at
            )),
            None => text.push_str("; no unsigned tail: the last record is signed for"),
        }
        Some(text)
    }

    /// The one-line summary `warden audit verify` prints last.
    pub fn summary(&self) -> String {
        let incomplete = match self.incomplete_runs.len() {
            0 => String::new(),
            1 => "; 1 run has records but no run_end".to_owned(),
            n => format!("; {n} runs have records but no run_end"),
        };
        match &self.verdict {
            Verdict::Ok if incomplete.is_empty() => {
                let mut text = format!("ok: {} records, head {}", self.records, self.head);
                if self.started_at > 0 {
                    match &self.first_checkpoint {
                        Some(c) => text.push_str(&format!(
                            " (from seq {}: the records before it are missing, as allowed; the signed checkpoint at seq {} ({}) vouches for the start)",
                            self.started_at, c.seq, c.at
                        )),
                        None => text.push_str(&format!(" (from seq {})", self.started_at)),
                    }
                }
                if self.checkpoints > 0 {
                    text.push_str(&format!(", {} checkpoint(s)", self.checkpoints));
                }
                if let Some(tail) = &self.unsigned_tail {
                    text.push_str(&format!(
                        ", unsigned tail of {} record(s) from seq {}",
                        tail.records, tail.first_seq
                    ));
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
