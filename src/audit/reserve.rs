//! The room a run's closing records need, reserved on the log's file system before
//! the run starts: `fallocate(FALLOC_FL_KEEP_SIZE)` past the end of the file, taken
//! again only when what was reserved is used up or was freed (see [`Reserve`]).
//!
//! # Security
//!
//! A plugin can fill the disk before it returns; the room reserved when its
//! `run_start` was written holds its closing records ([`super::bounds::CLOSING_RESERVE`]).
//! A reserve is trusted only while nothing can have freed it: the file has the length
//! its writer left and at least the blocks it had right after the reservation.

use super::error::AuditError;
use std::fs::File;
use std::io;
use std::path::Path;

/// Room reserved past the end of a file by `fallocate(FALLOC_FL_KEEP_SIZE)`: blocks
/// allocated up to `end`, and the file's `st_blocks` right after. Only a truncation
/// (a writer rolling back a failed append, in this process or another) frees such
/// blocks, and it brings `st_blocks` below that count; appends into the reserved
/// region never lower it. So the reserve still holds when the file has the length
/// this writer left it at and at least `blocks` blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Reserve {
    pub end: u64,
    pub blocks: u64,
}

/// How far past a `run_start`'s own [`CLOSING_RESERVE`] a reservation reaches, so
/// that the runs after it find their room already reserved: one `fallocate` per
/// mebibyte of log, not one per run. A file system too full for it gets exactly what
/// the run needs, as before.
///
/// [`CLOSING_RESERVE`]: super::bounds::CLOSING_RESERVE
pub(super) const RESERVE_AHEAD: u64 = 1024 * 1024;

/// The length of `file` and the blocks allocated to it, asked without its
/// timestamps: where the kernel keeps fine-grained timestamps (Linux 6.13 and later),
/// a stat that reads them makes the next write update them again, which costs every
/// append a journal entry.
pub(super) fn size_of(file: &File) -> io::Result<(u64, u64)> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let wanted = StatxFlags::SIZE | StatxFlags::BLOCKS;
    match statx(file, c"", AtFlags::EMPTY_PATH, wanted) {
        Ok(st) if StatxFlags::from_bits_retain(st.stx_mask).contains(wanted) => {
            Ok((st.stx_size, st.stx_blocks))
        }
        _ => {
            let st = rustix::fs::fstat(file)?;
            Ok((
                u64::try_from(st.st_size).unwrap_or(0),
                u64::try_from(st.st_blocks).unwrap_or(0),
            ))
        }
    }
}

/// Makes sure that, before a `run_start` of `len` bytes is written at `end`, the
/// blocks that record and the run's closing records need
/// ([`super::bounds::CLOSING_RESERVE`]) are reserved past the end of the file:
/// `fallocate(FALLOC_FL_KEEP_SIZE)` allocates them without changing its length, so
/// the appends after the plugin ran need no new space. When `reserve` (what this
/// writer reserved earlier and still holds) already reaches that far, nothing is
/// asked of the kernel; otherwise it reserves [`RESERVE_AHEAD`] more than needed, or
/// exactly what is needed when the file system has no room for more.
///
/// # Errors
///
/// [`AuditError::Write`] when the file system has no room (`ENOSPC`): the run must
/// not start, since its closing records might not fit. A file system without
/// `fallocate` (some network file systems) reserves nothing and is not an error.
pub(super) fn reserve_closing_space(
    file: &File,
    path: &Path,
    end: u64,
    len: u64,
    reserve: Reserve,
) -> Result<Reserve, AuditError> {
    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::io::Errno;
    let total = len.saturating_add(super::bounds::CLOSING_RESERVE);
    let needed = end.saturating_add(total);
    if needed <= reserve.end {
        return Ok(reserve);
    }
    let mut result = Err(Errno::NOSPC);
    for size in [total.saturating_add(RESERVE_AHEAD), total] {
        result = fallocate(file, FallocateFlags::KEEP_SIZE, end, size).map(|()| size);
        if result != Err(Errno::NOSPC) {
            break;
        }
    }
    match result {
        Ok(size) => {
            let (_, blocks) = size_of(file).map_err(|e| AuditError::write(path, e))?;
            Ok(Reserve {
                end: end.saturating_add(size),
                blocks,
            })
        }
        // Nothing can be reserved on this file system: not asked again for this file.
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(Reserve {
            end: u64::MAX,
            blocks: 0,
        }),
        Err(e) => Err(AuditError::write(
            path,
            std::io::Error::other(format!(
                "cannot reserve {total} bytes for this run's closing records ({e}); \
                 free space on the log's file system"
            )),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Rotation;
    use crate::audit::chain::Pending;
    use crate::audit::verify::{Verdict, verify_files};
    use crate::audit::writer::{ChainWriter, MSG_RECORD, Shared};
    use std::io::Write as _;

    fn writer(path: &Path, ts: &str) -> ChainWriter {
        ChainWriter::open(path, Rotation::Never, ts, Shared::new(path.into())).unwrap()
    }

    fn run_start(ts: &str, n: u32) -> Vec<u8> {
        let mut msg = vec![MSG_RECORD];
        Pending::encode(
            ts,
            &format!(r#""event":"run_start","run_id":"r{n}""#),
            r#","args_count":0"#,
            &mut msg,
        );
        msg
    }

    /// Bytes allocated to `path`, reserved room included.
    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn the_closing_reserve_is_taken_again_only_when_used_up_or_lost() {
        use crate::audit::CLOSING_RESERVE;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let ts = "2024-03-05T13:00:00.000Z";
        let mut w = writer(&path, ts);
        w.write_all(&run_start(ts, 0)).unwrap();
        w.check().unwrap();
        let len = || std::fs::metadata(&path).unwrap().len();
        assert!(allocated(&path) >= len() + CLOSING_RESERVE + RESERVE_AHEAD / 2);
        let reserve = w_reserve(&w);
        // The next runs find their room reserved: nothing is asked of the kernel.
        for n in 1..4 {
            w.write_all(&run_start(ts, n)).unwrap();
            assert_eq!(w_reserve(&w), reserve);
        }
        // Another writer rolls back a failed append: cutting the file to its length
        // frees the room reserved past it. The next run_start reserves it again.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len())
            .unwrap();
        assert!(allocated(&path) < CLOSING_RESERVE);
        w.write_all(&run_start(ts, 4)).unwrap();
        w.check().unwrap();
        assert!(allocated(&path) >= len() + CLOSING_RESERVE);
        let report = verify_files(std::slice::from_ref(&path)).unwrap();
        assert!(matches!(report.verdict, Verdict::Ok), "{report:?}");
        assert_eq!(report.records, 5);
    }

    fn w_reserve(w: &ChainWriter) -> Reserve {
        w.reserve().unwrap()
    }
}
