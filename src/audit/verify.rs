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
//! Records of one run share `run_id`. A run with records and no `run_end` is
//! *incomplete*: a `run_start` whose end was lost (a cut file, a full disk, a crash),
//! or a load (`policy_loaded`, decisions) that never closed; or the run is still going
//! on while verify reads the log. verify cannot tell these apart, so it lists every
//! such run with the place of its `run_start` (else its first record) and fails.
//! `checkpoint` records stand alone and need no `run_end`.
//!
//! Each file is read under a shared `flock`, so a writer is never caught mid-line.
//!
//! # Checkpoints, the start and the tail
//!
//! A `checkpoint` record ([`super::checkpoint`]) must match the chain it sits in: its
//! `head` is its own `prev` and its `records` its own `seq`, else the records before
//! it were rebuilt. With [`VerifyOptions::key`]:
//!
//! - every checkpoint's signature must hold for that key, and a chain with no
//!   checkpoint it signed fails: otherwise a chain rebuilt from seq 0 (a run deleted,
//!   the checkpoints dropped) would pass;
//! - the records after the last signed checkpoint are reported as the *unsigned
//!   tail* (how many, from which seq): nothing signed vouches for them yet;
//! - a set that does not start at seq 0 (its oldest files deleted, or its head cut
//!   off) verifies only with [`VerifyOptions::allow_missing_start`], and the report
//!   names its first seq and the signed checkpoint that vouches for it.
//!
//! A checkpoint file ([`SignedCheckpoint`], whose signature is checked when it is
//! read) must be found in the chain at its seq: the record at seq `records` follows the
//! signed `head` and is that very checkpoint (same signature). A log cut before it, or
//! rebuilt before it, fails. [`VerifyOptions::expect_heads`] (heads printed by an
//! earlier verify, or their first [`MIN_HEAD_PREFIX`] or more hex digits) must each be
//! the hash of a record in the chain; [`expected_head`] checks one given by a person.
//!
//! # Security
//!
//! The log is hostile input: any string from it that reaches a message is escaped
//! where the report is displayed; nothing in a line decides how the next is read.

mod report;

pub use report::{
    Break, BreakKind, CheckpointAt, CheckpointFileProblem, IncompleteRun, Location, UnsignedTail,
    Verdict, VerifyReport,
};

use super::chain::line_hash;
use super::checkpoint::{Checkpoint, key_id, signature_holds};
use super::record::{GENESIS, Line, classify};
use crate::escape::escape_line;
use ed25519_dalek::VerifyingKey;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest line verify reads; a longer one is not a record.
const MAX_LINE: u64 = 64 * 1024 * 1024;

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

/// A checkpoint file whose signature holds for a key: only [`SignedCheckpoint::verify`]
/// makes one, so a head that [`VerifyOptions::checkpoint_files`] holds is always a
/// signed one (the file's `line_sha256`, which no signature covers, is not used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    source: PathBuf,
    head: String,
    records: u64,
    signature: String,
}

/// A checkpoint file that is not signed by the given key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the checkpoint file `{}` {problem}", escape_line(&.file.display().to_string()))]
pub struct UnsignedCheckpointFile {
    /// The file.
    pub file: PathBuf,
    /// What is wrong (file text in it escaped).
    pub problem: String,
}

impl SignedCheckpoint {
    /// Checks the signature of `checkpoint` (read from `file`) with `key`.
    ///
    /// # Errors
    ///
    /// [`UnsignedCheckpointFile`] when another key signed it, or its signature does
    /// not hold over its head, record count and time (the file was edited).
    pub fn verify(
        file: &Path,
        checkpoint: &Checkpoint,
        key: &VerifyingKey,
    ) -> Result<SignedCheckpoint, UnsignedCheckpointFile> {
        let id = key_id(key);
        let problem = if checkpoint.key_id != id {
            Some(format!(
                "is signed by key {}, not by the given key {id}",
                escape_line(&checkpoint.key_id)
            ))
        } else if !signature_holds(
            key,
            &checkpoint.head,
            checkpoint.records,
            &checkpoint.ts,
            &checkpoint.signature,
        ) {
            Some(format!(
                "has a signature that does not hold for key {id}: it was edited, or forged"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(UnsignedCheckpointFile {
                file: file.to_path_buf(),
                problem,
            });
        }
        Ok(SignedCheckpoint {
            source: file.to_path_buf(),
            head: checkpoint.head.clone(),
            records: checkpoint.records,
            signature: checkpoint.signature.clone(),
        })
    }

    /// The file it was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The signed head: the SHA-256 of the record before the checkpoint.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The signed record count: the checkpoint record's own seq.
    pub fn records(&self) -> u64 {
        self.records
    }
}

/// The fewest hex digits of a head that [`VerifyOptions::expect_heads`] takes as a
/// prefix of it: 48 bits, as many as `warden audit show` prints of a checkpoint's.
pub const MIN_HEAD_PREFIX: usize = 12;

/// A head given to be found in the chain (`--expect-head`) that is neither a head nor
/// a prefix of one long enough to stand for it: a mistake in the command, not a sign
/// of tampering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a head: give the 64 hex digits that `warden audit verify` or `warden audit checkpoint` printed, or at least their first {}",
    escape_line(.given),
    MIN_HEAD_PREFIX
)]
pub struct BadExpectedHead {
    /// What was given.
    pub given: String,
}

/// Checks a head given by a person (`--expect-head`): 64 hex digits, or a prefix of at
/// least [`MIN_HEAD_PREFIX`] of them, in either case. Returns it lower-cased, as
/// [`VerifyOptions::expect_heads`] takes it.
///
/// # Errors
///
/// [`BadExpectedHead`] when it holds anything but hex digits, or fewer than
/// [`MIN_HEAD_PREFIX`] or more than 64 of them.
pub fn expected_head(given: &str) -> Result<String, BadExpectedHead> {
    let hex = given.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && (MIN_HEAD_PREFIX..=64).contains(&given.len()) {
        Ok(given.to_ascii_lowercase())
    } else {
        Err(BadExpectedHead {
            given: given.to_owned(),
        })
    }
}

/// Whether `head` (a record's hash) is the one `expected` stands for: equal to it, or
/// beginning with it when it is a prefix of at least [`MIN_HEAD_PREFIX`] digits.
fn stands_for(expected: &str, head: &str) -> bool {
    expected.len() >= MIN_HEAD_PREFIX && head.starts_with(expected)
}

/// What `verify` checks beyond the chain itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The checkpoint key: every checkpoint's signature must hold for it, at least one
    /// checkpoint must be signed by it, and the records after the last one are
    /// reported as the unsigned tail.
    pub key: Option<VerifyingKey>,
    /// Heads (SHA-256 of record lines, lower-case hex) that must be in the chain; each
    /// may be a prefix of at least [`MIN_HEAD_PREFIX`] digits ([`expected_head`]
    /// checks one). A shorter one is never found.
    pub expect_heads: Vec<String>,
    /// Signed checkpoints (from checkpoint files kept elsewhere) that must each be in
    /// the chain at their seq.
    pub checkpoint_files: Vec<SignedCheckpoint>,
    /// With a key: a set whose first record is not seq 0 verifies from that record,
    /// when a checkpoint signed by the key vouches for it. Without this, such a set
    /// breaks at its first record.
    pub allow_missing_start: bool,
}

/// A run id's records so far, while it has no `run_end`.
struct OpenRun {
    /// Its first record: seq and place.
    first: (u64, Location),
    /// Its `run_start`, when seen.
    start: Option<(u64, Location)>,
}

struct Chain<'o> {
    options: &'o VerifyOptions,
    key_id: Option<String>,
    found_heads: HashSet<String>,
    /// Which of `options.checkpoint_files` were found at their seq.
    files_found: Vec<bool>,
    /// The seq the set starts at (0 unless allowed to start later).
    started_at: u64,
    /// Checkpoints that match the chain (and whose signature holds, with a key).
    checkpoints: u64,
    first_checkpoint: Option<CheckpointAt>,
    last_checkpoint: Option<CheckpointAt>,
    /// The first record after the last checkpoint, when there is one.
    after_checkpoint: Option<Location>,
    expected: u64,
    prev: String,
    last: Option<(Location, u64)>,
    records: u64,
    fragments: Vec<(Location, bool)>,
    torn_skipped: Vec<Location>,
    /// Runs with records and no `run_end` yet.
    open_runs: HashMap<String, OpenRun>,
}

impl<'o> Chain<'o> {
    fn new(options: &'o VerifyOptions) -> Self {
        Chain {
            options,
            key_id: options.key.as_ref().map(key_id),
            found_heads: HashSet::new(),
            files_found: vec![false; options.checkpoint_files.len()],
            started_at: 0,
            checkpoints: 0,
            first_checkpoint: None,
            last_checkpoint: None,
            after_checkpoint: None,
            expected: 0,
            prev: GENESIS.to_owned(),
            last: None,
            records: 0,
            fragments: Vec::new(),
            torn_skipped: Vec::new(),
            open_runs: HashMap::new(),
        }
    }

    fn report(self, verdict: Verdict) -> VerifyReport {
        let broken = matches!(verdict, Verdict::Break(_));
        let mut incomplete_runs: Vec<IncompleteRun> = if broken {
            Vec::new()
        } else {
            self.open_runs
                .into_iter()
                .map(|(run_id, open)| {
                    let started = open.start.is_some();
                    let (seq, run_start) = open.start.unwrap_or(open.first);
                    IncompleteRun {
                        run_id,
                        run_start,
                        seq,
                        started,
                    }
                })
                .collect()
        };
        incomplete_runs.sort_by_key(|r| r.seq);
        let unsigned_tail = match (&self.key_id, &self.last_checkpoint, self.after_checkpoint) {
            (Some(_), Some(last), Some(at)) if !broken => Some(UnsignedTail {
                records: self.expected.saturating_sub(last.seq + 1),
                first_seq: last.seq + 1,
                at,
            }),
            _ => None,
        };
        VerifyReport {
            records: self.records,
            started_at: self.started_at,
            checkpoints: self.checkpoints,
            first_checkpoint: self.first_checkpoint,
            last_checkpoint: self.last_checkpoint,
            key_id: self.key_id,
            unsigned_tail,
            checkpoint_files: self.files_found.iter().filter(|f| **f).count() as u64,
            head: self.prev,
            torn_skipped: self.torn_skipped,
            torn_tail: self.fragments.into_iter().map(|(at, _)| at).collect(),
            incomplete_runs,
            verdict,
        }
    }

    /// Takes one line; `Some` ends the verification with a break.
    fn line(&mut self, at: Location, content: &[u8], terminated: bool) -> Option<Break> {
        let fields = match classify(content) {
            Line::Record(fields) => fields,
            Line::Fragment => {
                self.fragments.push((at, !terminated));
                return None;
            }
            Line::Foreign(what) => {
                return Some(Break {
                    at,
                    seq: None,
                    kind: BreakKind::NotARecord { what },
                });
            }
        };
        // A set whose oldest records are missing starts where it starts, when asked
        // to; a signed checkpoint must vouch for it (checked at the end).
        if self.last.is_none()
            && self.records == 0
            && fields.seq != 0
            && self.options.key.is_some()
            && self.options.allow_missing_start
        {
            self.expected = fields.seq;
            self.prev = fields.prev.clone();
            self.started_at = fields.seq;
        }
        if fields.seq != self.expected || fields.prev != self.prev {
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
            return Some(Break {
                at,
                seq: Some(fields.seq),
                kind,
            });
        }
        let checkpoint = fields.event == "checkpoint";
        let signature = if checkpoint {
            match self.checkpoint(content, fields.seq) {
                Ok(signature) => Some(signature),
                Err(problem) => {
                    return Some(Break {
                        at,
                        seq: Some(fields.seq),
                        kind: BreakKind::Checkpoint { problem },
                    });
                }
            }
        } else {
            None
        };
        if let Some(problem) = self.checkpoint_files_at(fields.seq, signature.as_deref()) {
            return Some(Break {
                at,
                seq: Some(fields.seq),
                kind: problem,
            });
        }
        self.torn_skipped
            .extend(self.fragments.drain(..).map(|(at, _)| at));
        self.prev = line_hash(content);
        for expected in &self.options.expect_heads {
            if stands_for(expected, &self.prev) {
                self.found_heads.insert(expected.clone());
            }
        }
        self.expected += 1;
        self.records += 1;
        if checkpoint {
            let here = CheckpointAt {
                seq: fields.seq,
                at: at.clone(),
            };
            self.first_checkpoint.get_or_insert_with(|| here.clone());
            self.last_checkpoint = Some(here);
            self.after_checkpoint = None;
        } else {
            if self.after_checkpoint.is_none() {
                self.after_checkpoint = Some(at.clone());
            }
            match fields.event.as_str() {
                "run_end" => {
                    self.open_runs.remove(&fields.run_id);
                }
                event => {
                    let open = self
                        .open_runs
                        .entry(fields.run_id)
                        .or_insert_with(|| OpenRun {
                            first: (fields.seq, at.clone()),
                            start: None,
                        });
                    if event == "run_start" && open.start.is_none() {
                        open.start = Some((fields.seq, at.clone()));
                    }
                }
            }
        }
        self.last = Some((at, fields.seq));
        None
    }

    /// The checkpoint files whose checkpoint is at `seq`, checked against the record
    /// there (which chains: its `prev` is `self.prev`); `signature` is the record's
    /// when it is a checkpoint.
    fn checkpoint_files_at(&mut self, seq: u64, signature: Option<&str>) -> Option<BreakKind> {
        for (i, file) in self.options.checkpoint_files.iter().enumerate() {
            if file.records != seq {
                continue;
            }
            let problem = if file.head != self.prev {
                Some(CheckpointFileProblem::OtherHead {
                    found: self.prev.clone(),
                })
            } else if signature != Some(file.signature.as_str()) {
                Some(CheckpointFileProblem::NotItsRecord)
            } else {
                None
            };
            if let Some(problem) = problem {
                return Some(BreakKind::CheckpointFile {
                    file: file.source.clone(),
                    seq,
                    problem,
                });
            }
            self.files_found[i] = true;
        }
        None
    }

    /// Checks the checkpoint record `content` at `seq`: its `head` must be its own
    /// `prev`, its `records` its own `seq`, and with a key its signature must hold.
    /// Returns its signature, or what is wrong (log text in it escaped).
    fn checkpoint(&mut self, content: &[u8], seq: u64) -> Result<String, String> {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(content) else {
            return Err("not JSON".into());
        };
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
        let (head, ts, record_key, signature) =
            (text("head"), text("ts"), text("key_id"), text("signature"));
        let records = v.get("records").and_then(serde_json::Value::as_u64);
        if head != self.prev || records != Some(seq) {
            return Err(format!(
                "it signed head {} after {} records, but the chain before it has head {} after {seq}: the records before it were rebuilt",
                escape_line(head),
                records.map_or("?".to_owned(), |r| r.to_string()),
                self.prev
            ));
        }
        if let (Some(key), Some(expected_id)) = (&self.options.key, &self.key_id) {
            if record_key != expected_id {
                return Err(format!(
                    "signed by key {}, not by the given key {expected_id}",
                    escape_line(record_key)
                ));
            }
            if !signature_holds(key, head, seq, ts, signature) {
                return Err(format!(
                    "its signature does not hold for key {expected_id}: it was forged or edited"
                ));
            }
        }
        self.checkpoints += 1;
        Ok(signature.to_owned())
    }

    /// The checks that need the whole chain: the checkpoint files (a cut before one
    /// is the most precise thing to say), a signed checkpoint (with a key) that also
    /// vouches for a missing start, the expected heads.
    fn at_end(&self, end: Location) -> Option<Break> {
        let at_end = |kind| {
            Some(Break {
                at: end.clone(),
                seq: None,
                kind,
            })
        };
        let missing = self
            .options
            .checkpoint_files
            .iter()
            .zip(&self.files_found)
            .find(|(_, found)| !**found);
        if let Some((file, _)) = missing {
            let problem = if self.records > 0 && file.records < self.started_at {
                CheckpointFileProblem::BeforeStart {
                    start: self.started_at,
                }
            } else {
                CheckpointFileProblem::Cut {
                    last_seq: self.last.as_ref().map(|(_, seq)| *seq),
                }
            };
            return at_end(BreakKind::CheckpointFile {
                file: file.source.clone(),
                seq: file.records,
                problem,
            });
        }
        if let Some(key_id) = &self.key_id
            && self.checkpoints == 0
        {
            return at_end(if self.started_at > 0 {
                BreakKind::Unanchored {
                    seq: self.started_at,
                }
            } else {
                BreakKind::NoSignedCheckpoint {
                    key_id: key_id.clone(),
                }
            });
        }
        if let Some(missing) = self
            .options
            .expect_heads
            .iter()
            .find(|h| !self.found_heads.contains(*h))
        {
            return at_end(BreakKind::MissingHead {
                head: missing.clone(),
            });
        }
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
/// checkpoint files and heads that must be in the chain, a missing start allowed).
///
/// # Errors
///
/// [`VerifyError`] when a file cannot be opened, locked or read.
pub fn verify_files_with<P: AsRef<Path>>(
    files: &[P],
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let mut chain = Chain::new(options);
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
    if let Some(b) = chain.at_end(end) {
        return Ok(chain.report(Verdict::Break(b)));
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
