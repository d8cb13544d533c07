//! Why a file could not be written ([`FileError`]): every error of this module says
//! what happened to which file and that nothing was written under its name.

use std::path::{Path, PathBuf};

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
