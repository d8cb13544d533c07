//! Every file warden creates or replaces, made one way: new files, replaced files, an
//! edit of the file a symbolic link leads to, the audit log opened for appending, a
//! log moved aside at rotation, and the folders they live in.
//!
//! - [`Folder`] (`folder.rs`): a folder held open, and new or superseded files in it;
//! - [`create_new`], [`replace`], [`check_replaceable`] (here), [`create_dirs`]
//!   (`folder.rs`): files and folders named by path;
//! - [`Edit`] (`edit.rs`): read a file, then replace it, following a link on purpose;
//! - [`open_append`], [`rename_aside`] (`append.rs`): the audit log and its rotation;
//! - `write.rs`: the one routine every write ends in (temporary file, owner and
//!   mode, `fsync`, rename);
//! - `look.rs`: what has a name, looked at without following it;
//! - [`FileError`] (`error.rs`): why a file could not be written.
//!
//! Anything else in warden that wants to write a file calls this module: `clippy.toml`
//! disallows the raw ways (`std::fs::write`, `File::create`, `OpenOptions::open`,
//! `fs::rename`, `fs::copy`, links, `set_permissions`, ...) everywhere else, so a new
//! writer cannot forget a symlink or an owner.
//!
//! # Security
//!
//! warden writes into folders that other people may own: a policy's folder, the folder
//! of an audit log, a folder named on the command line. Whoever can write such a
//! folder can put a symbolic link, a FIFO or a file of their own under the name warden
//! is about to write, and warden often runs with more rights than they have (root, the
//! key holder). So, for every file:
//!
//! - **The last component is never followed.** Files are written under a temporary
//!   name created with `O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC` (mode 0600, an
//!   unpredictable name in the same folder), written in full and `fsync`ed, then
//!   renamed into place: a reader sees the old file or the new one, never half of one,
//!   and a crash leaves no partial file under the real name.
//! - **A new file never replaces anything** ([`create_new`], [`Folder::create_new`]):
//!   it is moved into place with `renameat2(RENAME_NOREPLACE)` (or, where the file
//!   system lacks it, `link` + `unlink`, which never replace either), so a symlink or a
//!   file planted under the name fails the write ([`FileError::Exists`]).
//! - **A replaced file keeps its mode and owner** ([`replace`], [`Edit::replace`]):
//!   the temporary file gets them (`fchown`, then `fchmod`) before the rename, and when
//!   the owner cannot be kept, nothing is written ([`FileError::Owner`]). Just before
//!   the rename, the name must still be the very file that was inspected (device and
//!   inode), else nothing is written ([`FileError::Changed`]).
//! - **A symlinked target is refused** with an error that names where the link leads
//!   ([`FileError::Symlink`]). A command that means to edit the file a link resolves
//!   to says so: [`Edit::open_following_link`] resolves the link once, reads the file
//!   it leads to (opened without following any further link), and
//!   [`Edit::replace`] writes that same file the same safe way and returns its path,
//!   for the command to report.
//! - **The folder is opened once** ([`Folder`]); every later step (inspection, the
//!   temporary file, the rename, the final `fsync` of the folder) is relative to that
//!   descriptor, so renaming folders above it during the write changes nothing.
//! - **The audit log** is opened for appending with `O_APPEND | O_NOFOLLOW |
//!   O_NONBLOCK`, and created, when missing, with `O_EXCL` ([`open_append`]); a
//!   symlink, a FIFO or a directory under its name is refused.
//! - **A file moved aside** at rotation never lands on an existing name
//!   ([`rename_aside`]).

// The one module allowed to use the raw file-writing functions (see `clippy.toml`).
#![allow(clippy::disallowed_methods)]

mod append;
mod edit;
mod error;
mod folder;
mod look;
#[cfg(test)]
mod tests;
mod write;

pub(crate) use append::open_existing_append;
pub use append::{open_append, rename_aside};
pub use edit::Edit;
pub use error::FileError;
pub use folder::{Folder, create_dirs};

use folder::split;
use look::look;
use std::path::Path;
use write::{Target, write_then_rename};

/// Writes `bytes` to a new file at `path`, with exactly `mode`; never replaces
/// anything, a symlink included. The file appears complete or not at all.
///
/// # Errors
///
/// [`FileError::Exists`] when anything has the name already; [`FileError::Io`] when a
/// step fails.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let (folder, name) = split(path)?;
    write_then_rename(&folder, &name, path, bytes, Target::New { mode })
}

/// Writes `bytes` at `path`: a new file with exactly `mode_if_new`, or in place of the
/// regular file there, keeping its mode and owner. A symbolic link at `path` is
/// refused, not followed and not replaced.
///
/// # Errors
///
/// [`FileError::Symlink`] for a link, [`FileError::NotAFile`] for a directory, FIFO or
/// device, [`FileError::Owner`] when its owner cannot be kept,
/// [`FileError::Changed`] when the file was swapped meanwhile, [`FileError::Io`] when a
/// step fails.
pub fn replace(path: &Path, bytes: &[u8], mode_if_new: u32) -> Result<(), FileError> {
    let (folder, name) = split(path)?;
    match look(&folder, &name).map_err(|e| FileError::io("inspect", path, e))? {
        None => write_then_rename(
            &folder,
            &name,
            path,
            bytes,
            Target::New { mode: mode_if_new },
        )
        .map_err(|e| match e {
            // Something took the name meanwhile: replacing it was not asked for.
            FileError::Exists { .. } => FileError::Changed { path: path.into() },
            other => other,
        }),
        Some((_, meta)) if meta.file_type().is_symlink() => Err(FileError::symlink(path)),
        Some((_, meta)) if !meta.is_file() => Err(FileError::NotAFile { path: path.into() }),
        // `_held` keeps the file's inode number its own until the rename.
        Some((_held, meta)) => write_then_rename(&folder, &name, path, bytes, Target::Keep(&meta)),
    }
}

/// The checks [`replace`] makes before it writes, for a command that must fail before
/// it does anything else: `path` is missing, or a regular file; not a symlink.
/// ([`replace`] checks again when it writes.)
///
/// # Errors
///
/// [`FileError::Symlink`], [`FileError::NotAFile`], or [`FileError::Io`] when the
/// folder of `path` cannot be opened.
pub fn check_replaceable(path: &Path) -> Result<(), FileError> {
    let (folder, name) = split(path)?;
    match look(&folder, &name).map_err(|e| FileError::io("inspect", path, e))? {
        Some((_, meta)) if meta.file_type().is_symlink() => Err(FileError::symlink(path)),
        Some((_, meta)) if !meta.is_file() => Err(FileError::NotAFile { path: path.into() }),
        _ => Ok(()),
    }
}
