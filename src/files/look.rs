//! Looking at a name without following it: what has a name in a folder (`O_PATH |
//! O_NOFOLLOW`, which opens a symbolic link itself and never blocks on a FIFO), and
//! whether it is a symbolic link. Every write checks names this way before it acts.

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::{AsFd, OwnedFd};

/// How a name is looked at without following it: `O_PATH | O_NOFOLLOW` opens a
/// symlink itself, and opening never blocks on a FIFO.
const LOOK: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// What has the name `name` in `folder`, not following a symlink: `None` when
/// nothing does. The descriptor (`O_PATH`) holds it: while it is open, its inode
/// number is not given to another file.
pub(super) fn look(
    folder: &impl AsFd,
    name: &OsStr,
) -> std::io::Result<Option<(OwnedFd, Metadata)>> {
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
