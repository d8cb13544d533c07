//! The hash chain: each record's `prev` is the SHA-256 of the previous record's line,
//! and `seq` counts records across the whole chain.
//!
//! The writer holds the file's lock while it calls `scan_tail` to find the chain head
//! in the file itself (never in memory: other processes append too), then
//! `compose`s the new line from it. A torn last line (a writer that stopped
//! mid-line) is skipped: it was never part of the chain, and the next record follows
//! the last complete one.

use super::record::{GENESIS, Line, classify};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The first read of a file's tail; doubled until a whole record is in view.
const INITIAL_WINDOW: u64 = 8 * 1024;

/// How far back `scan_tail` looks for a complete record before it gives up.
pub const MAX_TAIL_SCAN: u64 = 16 * 1024 * 1024;

/// Hex SHA-256 of one line (without its `\n`).
pub fn line_hash(line: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(line);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

/// Where the next record goes in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The next record's `seq`.
    pub next_seq: u64,
    /// The next record's `prev`.
    pub prev: String,
}

impl Head {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Head {
            next_seq: 0,
            prev: GENESIS.to_owned(),
        }
    }

    /// The head after the record `line` whose `seq` is `seq`.
    fn after(seq: u64, line: &[u8]) -> Result<Self, TailError> {
        Ok(Head {
            next_seq: seq
                .checked_add(1)
                .ok_or(TailError::Foreign("a record with the largest possible seq"))?,
            prev: line_hash(line),
        })
    }
}

/// What the end of a log file holds.
#[derive(Debug)]
pub(crate) struct Tail {
    /// The chain head after the last complete record, if the file has one.
    pub head: Option<Head>,
    /// The file does not end with `\n` (its last line is torn, or lost its newline).
    pub unterminated: bool,
}

/// Why a file's tail cannot continue a chain.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TailError {
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file ends with something that is not a record.
    #[error("it ends with {0}")]
    Foreign(&'static str),
}

/// The parts of a record the emitter produced: everything but `seq` and `prev`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending<'a> {
    /// The `ts` value (RFC 3339, no quotes needed: it is ASCII without `"`).
    pub ts: &'a [u8],
    /// `"event":…,"run_id":…`.
    pub head: &'a [u8],
    /// `,"k":v…` after `prev`, or empty.
    pub tail: &'a [u8],
}

impl<'a> Pending<'a> {
    /// The records of one message, appended together: each is the lengths of its
    /// `ts`, head and tail (`u32`, little-endian) and then those bytes
    /// ([`Pending::encode`]). `None` when the message is not that, or a `ts` holds
    /// anything but printable ASCII without `"` and `\`.
    pub fn parse_all(mut bytes: &'a [u8]) -> Option<Vec<Self>> {
        let mut records = Vec::with_capacity(1);
        while !bytes.is_empty() {
            let mut parts = [&b""[..]; 3];
            let (lens, mut rest) = bytes.split_at_checked(12)?;
            for (i, part) in parts.iter_mut().enumerate() {
                let len = u32::from_le_bytes(lens[i * 4..i * 4 + 4].try_into().ok()?);
                let (this, after) = rest.split_at_checked(usize::try_from(len).ok()?)?;
                *part = this;
                rest = after;
            }
            let [ts, head, tail] = parts;
            if !ts
                .iter()
                .all(|b| b.is_ascii_graphic() && *b != b'"' && *b != b'\\')
            {
                return None;
            }
            records.push(Pending { ts, head, tail });
            bytes = rest;
        }
        (!records.is_empty()).then_some(records)
    }

    /// Appends one record's parts to a message for [`Pending::parse_all`] (a
    /// message may hold several).
    #[cfg(test)]
    pub fn encode(ts: &str, head: &str, tail: &str, out: &mut Vec<u8>) {
        Self::encode_with(ts, head, out, |out| out.extend_from_slice(tail.as_bytes()));
    }

    /// [`Pending::encode`] with the tail written by `write_tail` straight into the
    /// message (no copy of it made first); returns where the tail is in `out`.
    pub fn encode_with(
        ts: &str,
        head: &str,
        out: &mut Vec<u8>,
        write_tail: impl FnOnce(&mut Vec<u8>),
    ) -> std::ops::Range<usize> {
        let lens = out.len();
        for part in [ts, head] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(ts.as_bytes());
        out.extend_from_slice(head.as_bytes());
        let start = out.len();
        write_tail(out);
        let len = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
        out[lens + 8..lens + 12].copy_from_slice(&len.to_le_bytes());
        start..out.len()
    }
}

/// Appends the record line (without `\n`) for `pending` at `head` to `out`.
pub(crate) fn compose(pending: &Pending<'_>, head: &Head, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"v":1,"ts":""#);
    out.extend_from_slice(pending.ts);
    out.extend_from_slice(br#"","seq":"#);
    out.extend_from_slice(itoa::Buffer::new().format(head.next_seq).as_bytes());
    out.push(b',');
    out.extend_from_slice(pending.head);
    out.extend_from_slice(br#","prev":""#);
    out.extend_from_slice(head.prev.as_bytes());
    out.push(b'"');
    out.extend_from_slice(pending.tail);
    out.push(b'}');
}

/// Finds the last complete record of `file`, reading backwards from its end.
///
/// Torn lines (the beginning of a record, cut short) are skipped; anything else that
/// is not a record is an error, so that warden never appends to a file that is not
/// its log. A final line without `\n` is considered too: if it is a whole record that
/// only lost its newline, the chain continues from it once the writer adds the `\n`.
pub(crate) fn scan_tail(file: &File) -> Result<Tail, TailError> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Tail {
            head: None,
            unterminated: false,
        });
    }
    let mut window = len.min(INITIAL_WINDOW);
    loop {
        let start = len - window;
        let size = usize::try_from(window).map_err(|_| TailError::Foreign("a huge file"))?;
        let mut buf = vec![0u8; size];
        file.read_exact_at(&mut buf, start)?;
        let unterminated = buf.last() != Some(&b'\n');
        let mut end = if unterminated {
            buf.len()
        } else {
            buf.len() - 1
        };
        loop {
            let line_start = match buf[..end].iter().rposition(|b| *b == b'\n') {
                Some(newline) => newline + 1,
                None if start == 0 => 0,
                // The line may begin before the window: read more.
                None => break,
            };
            let line = &buf[line_start..end];
            match classify(line) {
                Line::Record(fields) => {
                    return Ok(Tail {
                        head: Some(Head::after(fields.seq, line)?),
                        unterminated,
                    });
                }
                Line::Fragment => {}
                Line::Foreign(what) => return Err(TailError::Foreign(what)),
            }
            if line_start == 0 {
                if start == 0 {
                    return Ok(Tail {
                        head: None,
                        unterminated,
                    });
                }
                break;
            }
            end = line_start - 1;
        }
        if window >= MAX_TAIL_SCAN {
            return Err(TailError::Foreign("no complete record in its last 16 MiB"));
        }
        window = (window * 2).min(len).min(MAX_TAIL_SCAN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(seq: u64, prev: &str, pad: usize) -> String {
        format!(
            r#"{{"v":1,"ts":"2024-01-01T00:00:00.000Z","seq":{seq},"event":"grant","run_id":"{}","prev":"{prev}"}}"#,
            "x".repeat(pad)
        )
    }

    fn file_with(content: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content)
            .unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    #[test]
    fn compose_puts_the_chain_fields_in_schema_order() {
        let mut msg = Vec::new();
        Pending::encode(
            "2024-01-01T00:00:00.000Z",
            r#""event":"grant","run_id":"ab""#,
            r#","x":1"#,
            &mut msg,
        );
        let pending = Pending::parse_all(&msg).unwrap()[0];
        let mut line = Vec::new();
        compose(
            &pending,
            &Head {
                next_seq: 7,
                prev: GENESIS.into(),
            },
            &mut line,
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            format!(
                r#"{{"v":1,"ts":"2024-01-01T00:00:00.000Z","seq":7,"event":"grant","run_id":"ab","prev":"{GENESIS}","x":1}}"#
            )
        );
    }

    #[test]
    fn the_head_follows_the_last_record() {
        let first = record(0, GENESIS, 1);
        let second = record(1, &line_hash(first.as_bytes()), 1);
        let (_d, file) = file_with(format!("{first}\n{second}\n").as_bytes());
        let tail = scan_tail(&file).unwrap();
        assert!(!tail.unterminated);
        assert_eq!(
            tail.head,
            Some(Head {
                next_seq: 2,
                prev: line_hash(second.as_bytes())
            })
        );
    }

    #[test]
    fn torn_lines_are_skipped_and_reported_unterminated() {
        let first = record(0, GENESIS, 1);
        let torn = &record(1, GENESIS, 1)[..40];
        let (_d, file) = file_with(format!("{first}\n{torn}").as_bytes());
        let tail = scan_tail(&file).unwrap();
        assert!(tail.unterminated);
        assert_eq!(tail.head.unwrap().next_seq, 1);
        // A torn line that a later writer terminated is skipped the same way.
        let (_d, file) = file_with(format!("{first}\n{torn}\n").as_bytes());
        let tail = scan_tail(&file).unwrap();
        assert!(!tail.unterminated);
        assert_eq!(tail.head.unwrap().prev, line_hash(first.as_bytes()));
        // Only torn lines: no head, the chain continues from the previous file.
        let (_d, file) = file_with(format!("{torn}\n{torn}").as_bytes());
        assert!(scan_tail(&file).unwrap().head.is_none());
    }

    #[test]
    fn a_record_that_only_lost_its_newline_is_the_head() {
        let first = record(0, GENESIS, 1);
        let (_d, file) = file_with(first.as_bytes());
        let tail = scan_tail(&file).unwrap();
        assert!(tail.unterminated);
        assert_eq!(tail.head.unwrap().next_seq, 1);
    }

    #[test]
    fn records_longer_than_the_first_window_are_found() {
        let first = record(0, GENESIS, 50_000);
        let second = record(1, &line_hash(first.as_bytes()), 30_000);
        let (_d, file) = file_with(format!("{first}\n{second}\n").as_bytes());
        assert_eq!(scan_tail(&file).unwrap().head.unwrap().next_seq, 2);
        // A single long record at the start of the file.
        let (_d, file) = file_with(format!("{first}\n").as_bytes());
        assert_eq!(scan_tail(&file).unwrap().head.unwrap().next_seq, 1);
    }

    #[test]
    fn foreign_files_are_refused() {
        let (_d, file) = file_with(b"root:x:0:0:root:/root:/bin/bash\n");
        assert!(matches!(scan_tail(&file), Err(TailError::Foreign(_))));
        let first = record(0, GENESIS, 1);
        let (_d, file) = file_with(format!("{first}\n\n").as_bytes());
        assert!(matches!(scan_tail(&file), Err(TailError::Foreign(_))));
    }
}
