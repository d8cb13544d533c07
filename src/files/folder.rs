//! [`Folder`]: a folder held open, every write in it relative to its descriptor.

use super::error::FileError;
use super::look::{is_symlink_at, metadata};
use super::write::{Target, write_then_rename};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A folder held open: every write in it is relative to this descriptor.
#[derive(Debug, Clone)]
pub struct Folder {
    fd: Arc<OwnedFd>,
    /// The path it was opened by, for messages only: never resolved again.
    path: PathBuf,
}

impl AsFd for Folder {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Folder {
    /// A folder the caller opened itself (the module cache walks its path without
    /// following links); `path` is only for messages.
    pub fn from_opened(fd: OwnedFd, path: impl Into<PathBuf>) -> Self {
        Folder {
            fd: Arc::new(fd),
            path: path.into(),
        }
    }

    /// Opens the folder `path` (following symbolic links on the way: the folder is
    /// the caller's choice; only a file's own name is never followed).
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] when it cannot be opened or is not a folder.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty()) {
            // A folder one may write but not list: enough to work in by name.
            Err(Errno::ACCESS) => rustix::fs::openat(
                rustix::fs::CWD,
                path,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ),
            other => other,
        }
        .map_err(|e| FileError::io("open the folder", path, e))?;
        Ok(Folder::from_opened(fd, path))
    }

    /// Opens the folder `path` for files only this user may touch: creates it (and
    /// missing parents) with mode 0700 when missing, and refuses it unless the opened
    /// folder (not a symlink in its place) is owned by this user and writable by
    /// nobody else.
    ///
    /// # Errors
    ///
    /// [`FileError::NotPrivate`] for a folder of someone else's, or one others can
    /// write; [`FileError::Symlink`] when `path` itself is a symlink;
    /// [`FileError::Io`] when it cannot be created or opened.
    pub fn open_private(path: &Path) -> Result<Self, FileError> {
        create_dirs(path, 0o700)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty()).map_err(|e| {
            if is_symlink_at(rustix::fs::CWD, path.as_os_str()) {
                FileError::symlink(path)
            } else {
                FileError::io("open the folder", path, e)
            }
        })?;
        let meta = metadata(&fd).map_err(|e| FileError::io("inspect the folder", path, e))?;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(FileError::NotPrivate {
                path: path.into(),
                problem: format!(
                    "is owned by uid {}, not by this user (uid {me})",
                    meta.uid()
                ),
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(FileError::NotPrivate {
                path: path.into(),
                problem: format!(
                    "is writable by group or others (mode {:o}): `chmod 700` it",
                    meta.mode() & 0o7777
                ),
            });
        }
        Ok(Folder::from_opened(fd, path))
    }

    /// The path the folder was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` to a new file `name` in this folder, with exactly `mode`, and
    /// returns its path. The file appears complete or not at all.
    ///
    /// # Errors
    ///
    /// [`FileError::Exists`] when anything has the name already (a symlink
    /// included); [`FileError::Io`] when a step fails.
    pub fn create_new(&self, name: &OsStr, bytes: &[u8], mode: u32) -> Result<PathBuf, FileError> {
        let shown = self.path.join(name);
        write_then_rename(self, name, &shown, bytes, Target::New { mode })?;
        Ok(shown)
    }

    /// Writes `bytes` as the file `name` in this folder, with exactly `mode`, in place
    /// of whatever has the name now: a file, or a symbolic link, which is replaced
    /// itself and never followed. Only for a folder nobody else can write (the module
    /// cache), where what has the name is this user's own leftover.
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] when a step fails.
    pub fn supersede(&self, name: &OsStr, bytes: &[u8], mode: u32) -> Result<(), FileError> {
        let shown = self.path.join(name);
        write_then_rename(self, name, &shown, bytes, Target::Supersede { mode })
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
