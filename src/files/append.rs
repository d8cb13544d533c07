//! The audit log's files: opened for appending ([`open_append`]) and moved aside at
//! rotation ([`rename_aside`]), never through a symlink and never onto an existing name.

use super::error::FileError;
use super::look::is_symlink_at;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use std::fs::File;
use std::path::Path;

/// How the audit log is opened: read and append, never through a symlink, never
/// blocking on a FIFO (a regular file ignores `O_NONBLOCK`).
const APPEND: OFlags = OFlags::RDWR
    .union(OFlags::APPEND)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// Opens `path` to read and append to (the audit log and its lock files): an
/// existing regular file, opened without following a symlink; or, when nothing has
/// the name, a new one, created exclusively with exactly `mode_if_new`.
///
/// # Errors
///
/// [`FileError::Symlink`] for a link, [`FileError::NotAFile`] for anything but a
/// regular file, [`FileError::Io`] when it cannot be opened or created.
pub fn open_append(path: &Path, mode_if_new: u32) -> Result<File, FileError> {
    let open_error = |e: Errno| open_error(path, e);
    // Someone may create or remove the file between the two opens: try a few times.
    let mut last = Errno::NOENT;
    for _ in 0..8 {
        match rustix::fs::openat(rustix::fs::CWD, path, APPEND, Mode::empty()) {
            Ok(fd) => return regular(File::from(fd), path),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(open_error(e)),
        }
        let mode = Mode::from_raw_mode(mode_if_new & 0o7777);
        match rustix::fs::openat(
            rustix::fs::CWD,
            path,
            APPEND | OFlags::CREATE | OFlags::EXCL,
            mode,
        ) {
            Ok(fd) => {
                // Exactly `mode_if_new`, whatever the umask.
                rustix::fs::fchmod(&fd, mode).map_err(|e| FileError::io("create", path, e))?;
                return regular(File::from(fd), path);
            }
            Err(Errno::EXIST) => last = Errno::EXIST,
            Err(e) => return Err(open_error(e)),
        }
    }
    Err(open_error(last))
}

/// Opens the existing regular file `path` to read and append to, as [`open_append`]
/// does, but never creates it: `None` when nothing has the name (a rotated log file
/// whose reserved room is released, which retention may have deleted).
///
/// # Errors
///
/// As [`open_append`].
pub(crate) fn open_existing_append(path: &Path) -> Result<Option<File>, FileError> {
    match rustix::fs::openat(rustix::fs::CWD, path, APPEND, Mode::empty()) {
        Ok(fd) => regular(File::from(fd), path).map(Some),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(open_error(path, e)),
    }
}

fn open_error(path: &Path, e: Errno) -> FileError {
    if e == Errno::LOOP || is_symlink_at(rustix::fs::CWD, path.as_os_str()) {
        FileError::symlink(path)
    } else {
        FileError::io("open", path, e)
    }
}

fn regular(file: File, path: &Path) -> Result<File, FileError> {
    let meta = file
        .metadata()
        .map_err(|e| FileError::io("inspect", path, e))?;
    if meta.is_file() {
        Ok(file)
    } else {
        Err(FileError::NotAFile { path: path.into() })
    }
}

/// Moves the file `from` to the new name `to` (in the same file system), never
/// replacing anything already at `to`: a log file moved aside at rotation.
///
/// # Errors
///
/// [`FileError::Exists`] when something has the name `to`; [`FileError::Io`] when the
/// move fails.
pub fn rename_aside(from: &Path, to: &Path) -> Result<(), FileError> {
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, from, cwd, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(FileError::Exists { path: to.into() }),
        // A file system without `RENAME_NOREPLACE`: a hard link never replaces either.
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            match rustix::fs::linkat(cwd, from, cwd, to, AtFlags::empty()) {
                Ok(()) => rustix::fs::unlinkat(cwd, from, AtFlags::empty())
                    .map_err(|e| FileError::io("move aside", from, e)),
                Err(Errno::EXIST) => Err(FileError::Exists { path: to.into() }),
                Err(e) => Err(FileError::io("move aside", from, e)),
            }
        }
        Err(e) => Err(FileError::io("move aside", from, e)),
    }
}
