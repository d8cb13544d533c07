//! Every file warden creates or replaces, made one way: new files, replaced files, an
//! edit of the file a symbolic link leads to, the audit log opened for appending, a
//! log moved aside at rotation, and the folders they live in.
//!
//! - [`Folder`] (`folder.rs`): a folder held open, and new or superseded files in it;
//! - [`create_new`], [`replace`], [`check_replaceable`], [`create_dirs`] (here): files
//!   and folders named by path;
//! - [`Edit`] (`edit.rs`): read a file, then replace it, following a link on purpose;
//! - [`open_append`], [`rename_aside`] (`append.rs`): the audit log and its rotation;
//! - `write.rs`: the one routine every write ends in (temporary file, owner and
//!   mode, `fsync`, rename).
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
mod folder;
#[cfg(test)]
mod tests;
mod write;

pub use append::{open_append, rename_aside};
pub use edit::Edit;
pub use folder::Folder;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use write::{Target, write_then_rename};

/// How a name is looked at without following it: `O_PATH | O_NOFOLLOW` opens a
/// symlink itself, and opening never blocks on a FIFO.
pub(super) const LOOK: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Why a file could not be written. Nothing was written under the file's name when
/// any of these is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The name is a symbolic link, and this write does not follow links.
    #[error(
        "`{}` is a symbolic link to `{}`; warden does not write through a symbolic link, so nothing was written: name the real file, or remove the link",
        .path.display(), .target.display()
    )]
    Symlink {
        /// The name given.
        path: PathBuf,
        /// Where the link leads (resolved as far as it exists).
        target: PathBuf,
    },
    /// Something already has the name of a file that must be new.
    #[error(
        "`{}` already exists, and warden never overwrites it: choose another name, or move that file away",
        .path.display()
    )]
    Exists {
        /// The name.
        path: PathBuf,
    },
    /// The name is a directory, a FIFO, a socket or a device.
    #[error("`{}` is not a regular file; nothing was written", .path.display())]
    NotAFile {
        /// The name.
        path: PathBuf,
    },
    /// A folder warden keeps its own files in is not private to this user.
    #[error(
        "the folder `{}` {problem}; warden keeps its own files only in a folder of this user's that nobody else can write",
        .path.display()
    )]
    NotPrivate {
        /// The folder.
        path: PathBuf,
        /// What is wrong (its owner, its mode).
        problem: String,
    },
    /// The replaced file's owner could not be given to the new file.
    #[error(
        "cannot keep the owner of `{}` (uid {uid}, gid {gid}): {source}; nothing was written: run as its owner, or as root",
        .path.display()
    )]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
        /// Why `fchown` failed.
        source: std::io::Error,
    },
    /// The file was replaced by another (or removed) while it was being written.
    #[error(
        "`{}` was replaced or removed by someone else while warden was writing it; nothing was written: run the command again",
        .path.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The operating system refused a step.
    #[error("cannot {action} `{}`: {source}", .path.display())]
    Io {
        /// What warden was doing (`create`, `write`, `open the folder of`, ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl FileError {
    /// The file or folder the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Symlink { path, .. }
            | FileError::Exists { path }
            | FileError::NotAFile { path }
            | FileError::NotPrivate { path, .. }
            | FileError::Owner { path, .. }
            | FileError::Changed { path }
            | FileError::Io { path, .. } => path,
        }
    }

    pub(super) fn io(action: &'static str, path: &Path, source: impl Into<std::io::Error>) -> Self {
        FileError::Io {
            action,
            path: path.into(),
            source: source.into(),
        }
    }

    pub(super) fn symlink(path: &Path) -> Self {
        FileError::Symlink {
            path: path.into(),
            target: link_target(path),
        }
    }
}

/// Where the symbolic link `path` leads: its fully resolved path, or, for a link
/// that leads nowhere, its target as written, taken relative to its folder.
fn link_target(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    match std::fs::read_link(path) {
        Ok(target) => path
            .parent()
            .map_or(target.clone(), |dir| dir.join(&target)),
        Err(_) => PathBuf::from("?"),
    }
}

/// The folder that holds `path`, held open, and the file's own name.
pub(super) fn split(path: &Path) -> Result<(Folder, OsString), FileError> {
    let name = path
        .file_name()
        .ok_or_else(|| FileError::NotAFile { path: path.into() })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let folder = Folder::open(parent).map_err(|e| match e {
        FileError::Io { source, .. } => FileError::Io {
            action: "open the folder of",
            path: path.into(),
            source,
        },
        other => other,
    })?;
    Ok((folder, name.to_owned()))
}

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

/// Creates the folder `path` and its missing parents, each with `mode` (existing
/// ones are left as they are).
///
/// # Errors
///
/// [`FileError::Io`] when one cannot be created.
pub fn create_dirs(path: &Path, mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if path.as_os_str().is_empty() || path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| FileError::io("create the folder", path, e))
}

/// What has the name `name` in `folder`, not following a symlink: `None` when
/// nothing does. The descriptor (`O_PATH`) holds it: while it is open, its inode
/// number is not given to another file.
pub(super) fn look(folder: &Folder, name: &OsStr) -> std::io::Result<Option<(OwnedFd, Metadata)>> {
    match rustix::fs::openat(folder, name, LOOK, Mode::empty()) {
        Ok(fd) => {
            let meta = metadata(&fd)?;
            Ok(Some((fd, meta)))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `name` in `dir` is a symbolic link (without following it).
pub(super) fn is_symlink_at(dir: impl AsFd, name: &OsStr) -> bool {
    rustix::fs::openat(dir, name, LOOK, Mode::empty())
        .ok()
        .and_then(|fd| metadata(&fd).ok())
        .is_some_and(|m| m.file_type().is_symlink())
}

/// `fstat` of a descriptor, as std's [`Metadata`].
pub(super) fn metadata(fd: &OwnedFd) -> std::io::Result<Metadata> {
    File::from(fd.try_clone()?).metadata()
}
