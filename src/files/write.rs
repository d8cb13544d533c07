//! The one routine every write ends in: a temporary file created exclusively in the
//! same folder, given its contents, owner and mode, synced, then renamed into place.

use super::error::FileError;
use super::look::look;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// How the temporary file of every write is created: a fresh file, never an existing
/// one, never through a symlink.
const CREATE: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What a write does to the name it targets.
pub(super) enum Target<'a> {
    /// Nothing may have the name; the file gets exactly `mode`.
    New { mode: u32 },
    /// The regular file described must still have the name; the new one gets its
    /// mode and owner.
    Keep(&'a Metadata),
    /// Whatever has the name is replaced (never followed); the file gets `mode`.
    Supersede { mode: u32 },
}

/// Writes `bytes` under a fresh temporary name in `folder`, gives it its mode (and
/// owner), syncs it, and renames it to `name` as `target` says; the temporary file is
/// removed on any failure.
pub(super) fn write_then_rename(
    folder: &impl AsFd,
    name: &OsStr,
    shown: &Path,
    bytes: &[u8],
    target: Target<'_>,
) -> Result<(), FileError> {
    let tmp = temp_name(name).map_err(|e| FileError::io("create", shown, e))?;
    let fd = rustix::fs::openat(folder, &tmp, CREATE, Mode::RUSR | Mode::WUSR)
        .map_err(|e| FileError::io("create a temporary file for", shown, e))?;
    let mut file = File::from(fd);
    let result = fill(&mut file, shown, bytes, &target)
        .and_then(|()| put_in_place(folder, &tmp, name, shown, &target));
    if result.is_err() {
        let _ = rustix::fs::unlinkat(folder, &tmp, AtFlags::empty());
    } else {
        // The rename itself must survive a crash too. (A folder held by `O_PATH`
        // cannot be synced; its file system still orders the rename after the data.)
        let _ = rustix::fs::fsync(folder);
    }
    result
}

/// Writes the contents, the owner and the mode of the temporary file, and syncs it.
pub(super) fn fill(
    file: &mut File,
    shown: &Path,
    bytes: &[u8],
    target: &Target<'_>,
) -> Result<(), FileError> {
    file.write_all(bytes)
        .map_err(|e| FileError::io("write", shown, e))?;
    let mode = match target {
        Target::New { mode } | Target::Supersede { mode } => *mode,
        Target::Keep(meta) => {
            let ours = file
                .metadata()
                .map_err(|e| FileError::io("write", shown, e))?;
            if (ours.uid(), ours.gid()) != (meta.uid(), meta.gid()) {
                rustix::fs::fchown(
                    &*file,
                    Some(rustix::fs::Uid::from_raw(meta.uid())),
                    Some(rustix::fs::Gid::from_raw(meta.gid())),
                )
                .map_err(|e| FileError::Owner {
                    path: shown.into(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    source: e.into(),
                })?;
            }
            meta.mode()
        }
    };
    // After `fchown`, which clears the set-id bits.
    rustix::fs::fchmod(&*file, Mode::from_raw_mode(mode & 0o7777))
        .map_err(|e| FileError::io("set the mode of", shown, e))?;
    file.sync_all()
        .map_err(|e| FileError::io("write", shown, e))
}

/// Renames the temporary file `tmp` to `name` as `target` says.
pub(super) fn put_in_place(
    folder: &impl AsFd,
    tmp: &OsStr,
    name: &OsStr,
    shown: &Path,
    target: &Target<'_>,
) -> Result<(), FileError> {
    let rename_error = |e: Errno| FileError::io("write", shown, e);
    match target {
        Target::Supersede { .. } => {
            rustix::fs::renameat(folder, tmp, folder, name).map_err(rename_error)
        }
        Target::Keep(meta) => {
            let now = look(folder, name).map_err(|e| FileError::io("inspect", shown, e))?;
            let same =
                now.is_some_and(|(_, now)| now.dev() == meta.dev() && now.ino() == meta.ino());
            if !same {
                return Err(FileError::Changed { path: shown.into() });
            }
            rustix::fs::renameat(folder, tmp, folder, name).map_err(rename_error)
        }
        Target::New { .. } => {
            match rustix::fs::renameat_with(folder, tmp, folder, name, RenameFlags::NOREPLACE) {
                Ok(()) => Ok(()),
                Err(Errno::EXIST) => Err(FileError::Exists { path: shown.into() }),
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                    // No `RENAME_NOREPLACE` here: a hard link never replaces either.
                    match rustix::fs::linkat(folder, tmp, folder, name, AtFlags::empty()) {
                        Ok(()) => {
                            let _ = rustix::fs::unlinkat(folder, tmp, AtFlags::empty());
                            Ok(())
                        }
                        Err(Errno::EXIST) => Err(FileError::Exists { path: shown.into() }),
                        Err(e) => Err(rename_error(e)),
                    }
                }
                Err(e) => Err(rename_error(e)),
            }
        }
    }
}

/// `.NAME.RANDOM.tmp`: in the same folder (so the rename stays in one file system),
/// hidden, and not guessable in advance.
pub(super) fn temp_name(name: &OsStr) -> std::io::Result<OsString> {
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut tmp = OsString::from(".");
    // Names are at most 255 bytes: keep the temporary one under that.
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name);
    let kept = &bytes[..bytes.len().min(200)];
    tmp.push(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(kept));
    tmp.push(".");
    tmp.push(hex::encode(random));
    tmp.push(".tmp");
    Ok(tmp)
}
