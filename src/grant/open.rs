//! Opening a declared directory for a decision, without following any symlink.
//!
//! A decision about a directory is only as good as the link between the path that was
//! checked and the directory the plugin gets. Looking the path up several times
//! (canonicalize, `stat`, open) lets a user who can write any folder on the way swap a
//! component for a symlink between two lookups (`renameat2(RENAME_EXCHANGE)` in a
//! loop), so that the check sees `./data` and the plugin gets `~/.ssh`.
//!
//! [`open_decided`] therefore opens the canonical path **once**, component by
//! component from `/`, with `O_NOFOLLOW` at every step (intermediate folders with
//! `O_PATH`, so a folder that may be traversed but not listed still works). A symlink
//! or a non-directory anywhere on the way fails the open (`ELOOP`/`ENOTDIR`) instead
//! of being followed. The caller then runs every allow, deny and protection check on
//! what that descriptor really is: its location as the kernel reports it
//! (`/proc/self/fd/N`) and its device and inode (`fstat`), and the sandbox gets that
//! same descriptor. Nothing is looked up by path after the open.
//!
//! # Security
//!
//! The descriptor is reached through real directories only, so it is a directory that
//! was at the canonical path when it was opened. If its location no longer matches the
//! path that was canonicalized (it was renamed in between), the decision is refused
//! rather than made about a path that is not where the descriptor is.

use crate::paths::proc_fd_path;
use cap_std::fs::Dir;
use rustix::fs::{Mode, OFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// A directory opened for a decision: the descriptor and what it really is.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The open directory (read-only descriptor).
    pub dir: Dir,
    /// Where the kernel says the descriptor is (`/proc/self/fd/N`).
    pub real_path: PathBuf,
    /// Device of the directory.
    pub dev: u64,
    /// Inode of the directory.
    pub ino: u64,
}

/// Why a directory could not be opened without following a symlink.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// A component on the way is a symlink or not a directory now, although the path
    /// was canonical a moment before: something changed it during the check.
    #[error(
        "a component of `{}` became a symlink or a non-directory while it was being checked; \
         something is changing the folders on this path, so it is not granted",
        .path.display()
    )]
    Changed {
        /// The canonical path.
        path: PathBuf,
    },
    /// The open descriptor is not at the path that was canonicalized.
    #[error(
        "`{}` was moved while it was being checked (the directory opened is now at `{}`); \
         it is not granted",
        .path.display(),
        .found.display()
    )]
    Moved {
        /// The canonical path.
        path: PathBuf,
        /// Where the descriptor is.
        found: PathBuf,
    },
    /// Any other failure (permissions, I/O).
    #[error("cannot open `{}`: {source}", .path.display())]
    Io {
        /// The canonical path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Opens `canonical` (an absolute path without symlinks, `.` or `..`) without following
/// any symlink, and reports what the descriptor is.
///
/// # Errors
///
/// [`OpenError::Changed`] when a component is a symlink or not a directory,
/// [`OpenError::Moved`] when the descriptor is not at `canonical` once opened, and
/// [`OpenError::Io`] otherwise.
pub(crate) fn open_decided(canonical: &Path) -> Result<Opened, OpenError> {
    let io_error = |source: io::Error| OpenError::Io {
        path: canonical.to_path_buf(),
        source,
    };
    let fd = walk(canonical).map_err(|e| match e.raw_os_error() {
        Some(code)
            if code == rustix::io::Errno::LOOP.raw_os_error()
                || code == rustix::io::Errno::NOTDIR.raw_os_error() =>
        {
            OpenError::Changed {
                path: canonical.to_path_buf(),
            }
        }
        _ => io_error(e),
    })?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| io_error(e.into()))?;
    let real_path = std::fs::read_link(proc_fd_path(&fd)).map_err(io_error)?;
    if real_path != canonical {
        return Err(OpenError::Moved {
            path: canonical.to_path_buf(),
            found: real_path,
        });
    }
    Ok(Opened {
        dir: Dir::from_std_file(std::fs::File::from(fd)),
        real_path,
        dev: stat.st_dev,
        ino: stat.st_ino,
    })
}

/// Opens `path` one component at a time from `/`, never following a symlink.
fn walk(path: &Path) -> io::Result<OwnedFd> {
    let not_canonical = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a canonical absolute path", path.display()),
        )
    };
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        return Err(not_canonical());
    }
    let names: Vec<&std::ffi::OsStr> = components
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(not_canonical()),
        })
        .collect::<io::Result<_>>()?;
    let traverse = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let read = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Some((last, above)) = names.split_last() else {
        return Ok(rustix::fs::open("/", read, Mode::empty())?);
    };
    let mut current = rustix::fs::open("/", traverse, Mode::empty())?;
    for name in above {
        current = rustix::fs::openat(&current, *name, traverse, Mode::empty())?;
    }
    Ok(rustix::fs::openat(&current, *last, read, Mode::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn opens_a_real_directory_and_reports_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let data = root.join("a/b");
        std::fs::create_dir_all(&data).unwrap();
        let opened = open_decided(&data).unwrap();
        let meta = std::fs::metadata(&data).unwrap();
        assert_eq!(opened.real_path, data);
        assert_eq!((opened.dev, opened.ino), (meta.dev(), meta.ino()));
        assert!(open_decided(Path::new("/")).is_ok());
    }

    #[test]
    fn a_symlink_anywhere_on_the_way_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("real/inner")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        for path in [root.join("link"), root.join("link/inner")] {
            let err = open_decided(&path).unwrap_err();
            assert!(matches!(err, OpenError::Changed { .. }), "{path:?}: {err}");
        }
        std::fs::write(root.join("file"), b"x").unwrap();
        let err = open_decided(&root.join("file")).unwrap_err();
        assert!(matches!(err, OpenError::Changed { .. }), "{err}");
        let err = open_decided(Path::new("relative")).unwrap_err();
        assert!(matches!(err, OpenError::Io { .. }), "{err}");
    }
}
